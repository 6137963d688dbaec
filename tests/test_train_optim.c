/*  test_train_optim: AdamW and the importance score against hand-computed cases, and their
    wiring inside the trainer (scores after a step, EMAs that persist across loads).

    AdamW, p = 0.5, lr 0.1, wd 0.01, gradients 0.2 then -0.1:
      t=1: m = 0.02, v = 4e-5, m^ = 0.2, v^ = 0.04,
           p = 0.5 - 0.1 (0.2 / (0.2 + 1e-8) + 0.01 * 0.5) = 0.399500005
      t=2: m = 0.008, v = 4.996e-5, m^ = 0.008 / 0.19 = 0.0421053, v^ = 4.996e-5 / 0.001999
           = 0.0249925, p = 0.399500005 - 0.1 (0.0421053 / 0.1580902 + 0.01 * 0.3995) = 0.3724668
    Importance, entries (w, g) = (0.5, 0.4), (-2, 0.1), then (1, 0.1), (-1, 0.5):
      step 1: I = 0.2, 0.2; Ibar = 0.03, 0.03; Ubar = 0.15 * 0.17 = 0.0255 (both)
      step 2: I = 0.1, 0.5; Ibar = 0.0405, 0.1005; Ubar = 0.0306, 0.0816;
              s = 0.0012393, 0.0082008
      as a component with b = (entry 1) and a = (entry 2): S = 0.0094401; Ibar only: 0.141
*/
#include "test_train_fixture.h"

#include "hafl_adamw.h"
#include "hafl_importance.h"

#include <stdio.h>

static void s_adamw(void)
{
    float p = 0.5f, m = 0.0f, v = 0.0f, g = 0.2f;
    hafl_adamw_update(&p, &g, &m, &v, 1, 1, 0.1f, 0.01f);
    CHECKF(fabsf(p - 0.399500005f) < 1e-6f, "%.9g", p);
    CHECK(fabsf(m - 0.02f) < 1e-8f && fabsf(v - 4e-5f) < 1e-8f);
    g = -0.1f;
    hafl_adamw_update(&p, &g, &m, &v, 1, 2, 0.1f, 0.01f);
    CHECKF(fabsf(p - 0.3724668f) < 2e-6f, "%.9g", p);
    CHECK(fabsf(m - 0.008f) < 1e-8f && fabsf(v - 4.996e-5f) < 1e-8f);
}

static void s_importance(void)
{
    float ibar[2] = {0}, ubar[2] = {0};
    float w1[2] = {0.5f, -2.0f}, g1[2] = {0.4f, 0.1f};
    float w2[2] = {1.0f, -1.0f}, g2[2] = {0.1f, 0.5f};
    hafl_importance_update(ibar, ubar, w1, g1, 2);
    CHECK(fabsf(ibar[0] - 0.03f) < 1e-7f && fabsf(ibar[1] - 0.03f) < 1e-7f);
    CHECK(fabsf(ubar[0] - 0.0255f) < 1e-7f && fabsf(ubar[1] - 0.0255f) < 1e-7f);
    hafl_importance_update(ibar, ubar, w2, g2, 2);
    CHECK(fabsf(ibar[0] - 0.0405f) < 1e-7f && fabsf(ibar[1] - 0.1005f) < 1e-7f);
    CHECK(fabsf(ubar[0] - 0.0306f) < 1e-7f && fabsf(ubar[1] - 0.0816f) < 1e-7f);
    double sb = hafl_importance_mean(ibar, ubar, 1, false);
    double sa = hafl_importance_mean(ibar + 1, ubar + 1, 1, false);
    CHECK(fabs(sb - 0.0012393) < 1e-8 && fabs(sa - 0.0082008) < 1e-8);
    CHECK(fabs(sb + sa - 0.0094401) < 1e-8);
    CHECK(fabs(hafl_importance_mean(ibar, ubar, 2, false) - 0.00472005) < 1e-8);
    double only = hafl_importance_mean(ibar, ubar, 1, true) +
                  hafl_importance_mean(ibar + 1, ubar + 1, 1, true);
    CHECK(fabs(only - 0.141) < 1e-7);
}

//  Expected EMA state of the trainer's entries, advanced in double alongside it.
typedef struct {
    double *ibar, *ubar;
} s_ema_t;

static void s_ema_step(double *ibar, double *ubar, const float *w, const float *g, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double sens = fabs((double)w[i] * g[i]);
        ibar[i] = 0.85 * ibar[i] + 0.15 * sens;
        ubar[i] = 0.85 * ubar[i] + 0.15 * fabs(sens - ibar[i]);
    }
}

static double s_ema_mean(const double *ibar, const double *ubar, size_t n)
{
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += ibar[i] * ubar[i];
    return sum / (double)n;
}

//  The trainer's scores after two steps with a reload in between follow the EMA recursion.
static void s_trainer_scores(void)
{
    fixture_t f;
    fixture_init(&f, "wq,wk,wv,wo", 23);
    const hafl_layout_t *L = &f.layout;
    uint32_t R = L->rank;
    hafl_lora_trainer_t *t = fixture_trainer(&f, 1);
    char err[256];
    size_t n = (size_t)L->n_matrices * R;
    uint8_t *roles = malloc(n);
    s_ema_t *ema = calloc(L->n_matrices, sizeof *ema);
    CHECK(roles && ema);
    for (size_t i = 0; i < n; i++)
        roles[i] = i % 2 ? HAFL_ROLE_TRAINABLE : HAFL_ROLE_FROZEN;
    for (uint32_t m = 0; m < L->n_matrices; m++) {
        size_t cnt = (size_t)R * (L->matrices[m].d_out + L->matrices[m].d_in);
        ema[m].ibar = calloc(cnt, sizeof(double));
        ema[m].ubar = calloc(cnt, sizeof(double));
        CHECK(ema[m].ibar && ema[m].ubar);
    }
    for (int round = 0; round < 2; round++) {
        //  reload between steps: the EMAs must carry over
        CHECKF(hafl_lora_trainer_load(t, round ? hafl_lora_trainer_adapter(t) : f.adapter, roles,
                                      err, sizeof err) == 0,
               "%s", err);
        CHECKF(hafl_lora_trainer_step(t, f.tokens, f.lengths, f.labels, f.B, f.T, 1e-2f, 0.0f, NULL,
                                      err, sizeof err) == 0,
               "%s", err);
        const hafl_adapter_t *ad = hafl_lora_trainer_adapter(t);
        for (uint32_t m = 0; m < L->n_matrices; m++) {
            uint32_t d_out = L->matrices[m].d_out, d_in = L->matrices[m].d_in;
            for (uint32_t k = 0; k < R; k++) {
                if (roles[m * R + k] != HAFL_ROLE_TRAINABLE)
                    continue;
                double *ib = ema[m].ibar + (size_t)k * (d_out + d_in);
                double *ub = ema[m].ubar + (size_t)k * (d_out + d_in);
                s_ema_step(ib, ub, hafl_adapter_b(ad, m, k),
                           hafl_lora_trainer_grad_bt(t, m) + (size_t)k * d_out, d_out);
                s_ema_step(ib + d_out, ub + d_out, hafl_adapter_a(ad, m, k),
                           hafl_lora_trainer_grad_a(t, m) + (size_t)k * d_in, d_in);
                double expect =
                    s_ema_mean(ib, ub, d_out) + s_ema_mean(ib + d_out, ub + d_out, d_in);
                CHECKF(fabs(ad->score[m * R + k] - expect) <= 1e-4 * expect + 1e-12,
                       "score of %s component %u: %.8g, expected %.8g", L->matrices[m].name, k,
                       ad->score[m * R + k], expect);
                CHECK(expect > 0.0);
            }
        }
    }
    for (uint32_t m = 0; m < L->n_matrices; m++)
        free(ema[m].ibar), free(ema[m].ubar);
    free(ema);
    free(roles);
    hafl_lora_trainer_destroy(&t);
    fixture_clear(&f);
}

int main(void)
{
    s_adamw();
    s_importance();
    s_trainer_scores();
    printf("train optim: AdamW, importance and trainer scores match the hand computation\n");
    return 0;
}
