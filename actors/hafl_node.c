/*  hafl_node: start and supervise the actors of one group. See hafl_node.h. */
#include "hafl_node.h"
#include "hafl_client.h"
#include "hafl_evaluator.h"
#include "hafl_logger.h"
#include "hafl_msg.h"
#include "hafl_pool.h"
#include "hafl_server.h"
#include "hafl_server_checkpoint.h"
#include "hafl_server_state.h"
#include "hafl_signals.h"

#include <cblas.h>
#include <czmq.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct hafl_node_t {
    const hafl_topology_t *topology;
    hafl_group_t group;
    hafl_endpoints_t endpoints;
    char run_dir[4096];
    char run_id[HAFL_MSG_MAX_NAME];
    char events_path[4200];
    char unreproducible[256]; //  from the server's DONE: "" when the run is reproducible
    FILE *progress;
    bool tty;
    hafl_task_t *task;
    hafl_security_t *security; //  CURVE keys and authenticator (inert when security is off)
    hafl_log_auth_t *log_auth; //  the emitters' credentials, and the logger's admission
    char log_local[HAFL_ENDPOINT_MAX]; //  the logger's in-process endpoint, "" when none
    //  One certificate per client, or an evaluator certificate of its own (hafl_security.h):
    //  the credentials of each connecting actor, [n_clients] + the evaluator's; NULL entries
    //  use the process's own (security, log_auth).
    hafl_security_t **peer_security;
    hafl_log_auth_t **peer_log_auth;
    uint32_t n_peers;
    zactor_t *logger;
    zactor_t *server;
    zactor_t *evaluator;
    hafl_pool_t *pool;
    zactor_t **clients; //  [n_clients]
    uint32_t n_clients;
    hafl_server_args_t server_args;
    hafl_evaluator_args_t evaluator_args;
    hafl_client_args_t *client_args; //  [n_clients]; read by the actors only while starting
    int64_t started;
    bool progress_open; //  a terminal progress line is on screen
};

int64_t hafl_node_frame_cap(const hafl_layout_t *layout)
{
    int64_t cap = HAFL_MSG_MAX_HEADER;
    for (uint32_t m = 0; m < layout->n_matrices; m++) {
        int64_t frame = HAFL_MSG_RANK1_OVERHEAD +
                        4 * ((int64_t)layout->matrices[m].d_out + layout->matrices[m].d_in);
        if (frame > cap)
            cap = frame;
    }
    int64_t head = HAFL_MSG_HEAD_OVERHEAD + 4 * (int64_t)layout->head_rows * layout->head_cols;
    return (head > cap ? head : cap) + 4096;
}

static int s_mkdirs(const char *path)
{
    char buffer[4096];
    snprintf(buffer, sizeof buffer, "%s", path);
    for (char *p = buffer + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(buffer, 0755) && errno != EEXIST)
                return -1;
            *p = '/';
        }
    return mkdir(buffer, 0755) && errno != EEXIST ? -1 : 0;
}

//  logger/run_dir/NAME-STAMP[-SUFFIX][-N] (N from 2 when the name is taken).
static int s_make_run_dir(const hafl_topology_t *t, const char *suffix, char *dir, size_t dirlen,
                          char *err, size_t errlen)
{
    if (s_mkdirs(t->logger.run_dir)) {
        snprintf(err, errlen, "logger/run_dir: cannot create %s: %s", t->logger.run_dir,
                 strerror(errno));
        return -1;
    }
    time_t now = time(NULL);
    struct tm utc;
    gmtime_r(&now, &utc);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &utc);
    char name[256];
    snprintf(name, sizeof name, "%s-%s%s%s", t->name, stamp, suffix ? "-" : "",
             suffix ? suffix : "");
    for (int attempt = 1; attempt < 1000; attempt++) {
        if (attempt == 1)
            snprintf(dir, dirlen, "%s/%s", t->logger.run_dir, name);
        else
            snprintf(dir, dirlen, "%s/%s-%d", t->logger.run_dir, name, attempt);
        if (mkdir(dir, 0755) == 0)
            return 0;
        if (errno != EEXIST)
            break;
    }
    snprintf(err, errlen, "cannot create a run folder in %s: %s", t->logger.run_dir,
             strerror(errno));
    return -1;
}

int hafl_node_make_run_dir(const hafl_topology_t *t, char *dir, size_t dirlen, char *err,
                           size_t errlen)
{
    return s_make_run_dir(t, NULL, dir, dirlen, err, errlen);
}

//  The round of the checkpoint in a resume folder, for the clients (hafl_client.h): the
//  generation the server resumes from (hafl_server_checkpoint.h), or 0 when the folder has no
//  checkpoint and this node has no server (a client host's own folder).
static int s_resume_round(const hafl_node_t *self, const char *dir, uint32_t *round, char *err,
                          size_t errlen)
{
    char path[4200], note[700];
    snprintf(path, sizeof path, "%s/%s", dir, HAFL_CHECKPOINT_DIR);
    *round = 0;
    if (!self->group.server && access(path, F_OK) != 0)
        return 0;
    hafl_server_state_t *state = hafl_server_checkpoint_load(dir, NULL, note, sizeof note, err,
                                                             errlen);
    if (!state)
        return -1;
    *round = state->round;
    hafl_server_state_destroy(&state);
    return 0;
}

//  Many in-process clients need many sockets and file descriptors (each socket has a mailbox):
//  a client has its pipe (two), its dealer, the pool's, its events' and, off inproc, a
//  handshake watch and libzmq's monitor socket for it.
static void s_raise_limits(uint32_t clients)
{
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
    }
    size_t wanted = 64 + (size_t)clients * 8;
    if (wanted > 1024)
        zsys_set_max_sockets(wanted);
}

//  Where this process's actors send events: the logger's in-process endpoint when it runs
//  here, else its network one.
static const char *s_log_endpoint(const hafl_node_t *self)
{
    return self->log_local[0] ? self->log_local : self->endpoints.log;
}

//  The credentials of the actor at peer slot `slot` (a client's offset in the group, or
//  n_clients for the evaluator), index its place (a client index or HAFL_BOUND_EVALUATOR):
//  its own certificate when the topology gives each one its own, else the process's.
static int s_peer_credentials(hafl_node_t *self, const hafl_topology_t *t, uint32_t slot,
                              int64_t index, const hafl_security_t **security,
                              const hafl_log_auth_t **log_auth, char *err, size_t errlen)
{
    *security = self->security;
    *log_auth = self->log_auth;
    bool own = t->security.curve && (strstr(t->security.client_cert, HAFL_SECURITY_INDEX_TOKEN) ||
                                     (index == HAFL_BOUND_EVALUATOR && t->security.evaluator_cert[0]));
    if (!own)
        return 0;
    self->peer_security[slot] = hafl_security_new_peer(t, index, err, errlen);
    if (!self->peer_security[slot])
        return -1;
    self->peer_log_auth[slot] = hafl_log_auth_with(self->log_auth, self->peer_security[slot]);
    if (!self->peer_log_auth[slot]) {
        snprintf(err, errlen, "node: out of memory");
        return -1;
    }
    *security = self->peer_security[slot];
    *log_auth = self->peer_log_auth[slot];
    return 0;
}

hafl_node_t *hafl_node_new(const hafl_node_opts_t *opts, char *err, size_t errlen)
{
    const hafl_topology_t *t = opts->topology;
    hafl_node_t *self = calloc(1, sizeof(hafl_node_t));
    if (!self) {
        snprintf(err, errlen, "node: out of memory");
        return NULL;
    }
    self->topology = t;
    self->progress = opts->progress;
    self->tty = opts->progress && isatty(fileno(opts->progress));
    self->started = zclock_mono();
    bool in_process = opts->group == NULL;
    if (in_process) {
        snprintf(self->group.name, sizeof self->group.name, "all");
        self->group.server = true;
        self->group.evaluator = t->evaluator.enabled;
        self->group.client_first = 0;
        self->group.client_last = t->clients.count - 1;
    } else {
        hafl_placement_t placement;
        hafl_placement_groups(t, &placement);
        const hafl_group_t *g = hafl_placement_find(&placement, opts->group);
        if (!g) {
            snprintf(err, errlen, "%s: placement: no group or host named '%s'", t->path,
                     opts->group);
            goto fail;
        }
        self->group = *g;
    }
    //  Run folder and id.
    if (opts->run_dir)
        snprintf(self->run_dir, sizeof self->run_dir, "%s", opts->run_dir);
    else if (self->group.server &&
             hafl_node_make_run_dir(t, self->run_dir, sizeof self->run_dir, err, errlen))
        goto fail;
    if (opts->run_id)
        snprintf(self->run_id, sizeof self->run_id, "%s", opts->run_id);
    else if (self->run_dir[0]) {
        const char *slash = strrchr(self->run_dir, '/');
        snprintf(self->run_id, sizeof self->run_id, "%.63s", slash ? slash + 1 : self->run_dir);
    }
    hafl_placement_endpoints(t, in_process, self->run_id, &self->endpoints);
    //  Clients on a host without the server keep their state in a run folder of their own.
    bool has_clients = self->group.client_first <= self->group.client_last;
    if (!self->run_dir[0] && has_clients && t->server.checkpoint_every > 0 &&
        s_make_run_dir(t, self->group.name, self->run_dir, sizeof self->run_dir, err, errlen))
        goto fail;
    //  One security context per process; its authenticator (server side) must run before any
    //  socket is armed, and it outlives every actor.
    self->security = hafl_security_new(t, err, errlen);
    if (!self->security)
        goto fail;
    if (self->group.server && hafl_security_serve(self->security, t->logger.echo, err, errlen))
        goto fail;

    uint32_t n_clients = self->group.client_first <= self->group.client_last
                             ? self->group.client_last - self->group.client_first + 1
                             : 0;
    s_raise_limits(n_clients);
    //  The logger admits only this run's emitters (hafl_log_auth.h). Its authenticator opens
    //  sockets, so it starts after the socket limit is set.
    self->log_auth = hafl_log_auth_new(t, self->security, err, errlen);
    if (!self->log_auth || (self->group.server && hafl_log_auth_serve(self->log_auth, err, errlen)))
        goto fail;
    openblas_set_num_threads(1);
    self->task = hafl_task_new(t, err, errlen);
    if (!self->task)
        goto fail;
    int64_t cap = hafl_node_frame_cap(hafl_task_layout(self->task));

    if (self->group.server) {
        snprintf(self->events_path, sizeof self->events_path, "%s/events.jsonl", self->run_dir);
        //  The actors of this process reach the logger in process, where no credentials are
        //  needed (the server's host may hold no client certificate the allow-list admits).
        if (strncmp(self->endpoints.log_bind, "inproc://", 9) != 0)
            snprintf(self->log_local, sizeof self->log_local, "inproc://hafl-%s-%d-log-local",
                     self->run_id, (int)getpid());
        hafl_logger_args_t largs = {.pull = self->endpoints.log_bind,
                                    .pub = self->endpoints.pub_bind,
                                    .path = self->events_path,
                                    .echo = t->logger.echo,
                                    .auth = self->log_auth,
                                    .local = self->log_local[0] ? self->log_local : NULL};
        self->logger = hafl_logger_new(&largs);
        if (!self->logger) {
            snprintf(err, errlen, "logger: cannot start (bind %s / %s, file %s)",
                     self->endpoints.log_bind, self->endpoints.pub_bind, self->events_path);
            goto fail;
        }
        hafl_server_args_t *sa = &self->server_args;
        sa->topology = t;
        sa->task = self->task;
        sa->endpoint = self->endpoints.server_bind;
        sa->control = self->endpoints.control_bind;
        sa->log_endpoint = s_log_endpoint(self);
        sa->log_auth = self->log_auth;
        sa->run_id = self->run_id;
        sa->run_dir = self->run_dir;
        sa->max_msg_bytes = cap;
        sa->resume = opts->resume;
        sa->all_local = in_process;
        sa->security = self->security;
        self->server = hafl_server_new(sa);
        if (!self->server) {
            snprintf(err, errlen, "%s", sa->err[0] ? sa->err : "server: cannot start");
            goto fail;
        }
    }
    self->n_peers = n_clients + 1;
    self->peer_security = calloc(self->n_peers, sizeof *self->peer_security);
    self->peer_log_auth = calloc(self->n_peers, sizeof *self->peer_log_auth);
    if (!self->peer_security || !self->peer_log_auth) {
        snprintf(err, errlen, "node: out of memory");
        goto fail;
    }
    if (self->group.evaluator) {
        hafl_evaluator_args_t *ea = &self->evaluator_args;
        const hafl_security_t *security;
        const hafl_log_auth_t *log_auth;
        if (s_peer_credentials(self, t, n_clients, HAFL_BOUND_EVALUATOR, &security, &log_auth,
                               err, errlen))
            goto fail;
        ea->task = self->task;
        ea->server = self->endpoints.server;
        ea->log_endpoint = s_log_endpoint(self);
        ea->log_auth = log_auth;
        ea->run_id = self->run_id;
        ea->max_examples = t->evaluator.max_examples;
        ea->max_msg_bytes = cap;
        ea->security = security;
        self->evaluator = hafl_evaluator_new(ea);
        if (!self->evaluator) {
            snprintf(err, errlen, "%s", ea->err[0] ? ea->err : "evaluator: cannot start");
            goto fail;
        }
    }
    uint32_t resume_round = 0;
    if (n_clients > 0 && opts->resume &&
        s_resume_round(self, opts->resume, &resume_round, err, errlen))
        goto fail;
    if (n_clients > 0) {
        self->pool = hafl_pool_new(opts->slots);
        self->clients = calloc(n_clients, sizeof(zactor_t *));
        self->client_args = calloc(n_clients, sizeof(hafl_client_args_t));
        if (!self->pool || !self->clients || !self->client_args) {
            snprintf(err, errlen, "node: cannot start the compute pool");
            goto fail;
        }
        for (uint32_t j = 0; j < n_clients; j++) {
            hafl_client_args_t *ca = &self->client_args[j];
            const hafl_security_t *security;
            const hafl_log_auth_t *log_auth;
            if (s_peer_credentials(self, t, j, self->group.client_first + j, &security, &log_auth,
                                   err, errlen))
                goto fail;
            ca->task = self->task;
            ca->topology = t;
            ca->index = self->group.client_first + j;
            ca->server = self->endpoints.server;
            ca->log_endpoint = s_log_endpoint(self);
            ca->log_auth = log_auth;
            ca->run_id = self->run_id;
            ca->pool = hafl_pool_endpoint(self->pool);
            ca->max_msg_bytes = cap;
            ca->security = security;
            ca->state_dir = self->run_dir[0] ? self->run_dir : NULL;
            ca->resume_dir = opts->resume;
            ca->resume_round = resume_round;
            self->clients[j] = hafl_client_new(ca);
            if (!self->clients[j]) {
                snprintf(err, errlen, "%s", ca->err[0] ? ca->err : "client: cannot start");
                goto fail;
            }
            self->n_clients = j + 1;
        }
    }
    return self;
fail:
    hafl_node_destroy(&self);
    return NULL;
}

void hafl_node_destroy(hafl_node_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hafl_node_t *self = *self_p;
    //  Clients first (each waits for a job it still has at the pool), then the pool, then the
    //  evaluator and the server, and the logger last so it drains everyone's events.
    for (uint32_t j = 0; j < self->n_clients; j++)
        zactor_destroy(&self->clients[j]);
    hafl_pool_destroy(&self->pool);
    zactor_destroy(&self->evaluator);
    zactor_destroy(&self->server);
    zactor_destroy(&self->logger);
    free(self->clients);
    free(self->client_args);
    hafl_task_destroy(&self->task);
    for (uint32_t i = 0; i < self->n_peers; i++) {
        hafl_log_auth_destroy(&self->peer_log_auth[i]);
        hafl_security_destroy(&self->peer_security[i]);
    }
    free(self->peer_log_auth);
    free(self->peer_security);
    hafl_log_auth_destroy(&self->log_auth);
    hafl_security_destroy(&self->security);
    free(self);
    *self_p = NULL;
}

static void s_bytes(char *out, size_t outlen, double bytes)
{
    const char *units[] = {"B", "KB", "MB", "GB", "TB"};
    int u = 0;
    while (bytes >= 1000.0 && u < 4) {
        bytes /= 1000.0;
        u++;
    }
    snprintf(out, outlen, u ? "%.2f %s" : "%.0f %s", bytes, units[u]);
}

static void s_print_progress(hafl_node_t *self, zmsg_t *msg, double *cum_up, double *cum_down)
{
    char *f[11] = {0};
    for (int i = 0; i < 11; i++)
        f[i] = zmsg_popstr(msg);
    if (self->progress && f[8]) {
        unsigned round = (unsigned)atoi(f[0]), rounds = (unsigned)atoi(f[1]);
        double accuracy = atof(f[2]), loss = atof(f[3]);
        //  The server's totals (a resumed run's include the rounds before its checkpoint).
        *cum_up = f[9] ? atof(f[9]) : *cum_up + atof(f[4]);
        *cum_down = f[10] ? atof(f[10]) : *cum_down + atof(f[5]);
        double elapsed = (double)(zclock_mono() - self->started) / 1000.0;
        double left = round ? elapsed / round * (rounds - round) : 0;
        char up[32], down[32];
        s_bytes(up, sizeof up, *cum_up);
        s_bytes(down, sizeof down, *cum_down);
        if (self->tty) {
            fprintf(self->progress,
                    "\r\033[Kround %u/%u  accuracy %.4f  loss %.4f  up %s  down %s  "
                    "%.0f s left",
                    round, rounds, accuracy, loss, up, down, left);
            self->progress_open = true;
        } else
            fprintf(self->progress,
                    "round %u/%u accuracy %.4f loss %.4f reported %s/%s up %s B down %s B "
                    "wall %s ms cum_up %.0f B\n",
                    round, rounds, isnan(accuracy) ? NAN : accuracy, loss, f[7], f[8], f[4], f[5],
                    f[6], *cum_up);
        fflush(self->progress);
    }
    for (int i = 0; i < 11; i++)
        zstr_free(&f[i]);
}

int hafl_node_wait(hafl_node_t *self, char hex[65], char *reason, size_t reasonlen)
{
    hex[0] = 0;
    snprintf(reason, reasonlen, "interrupted");
    zpoller_t *poller = zpoller_new(NULL);
    if (!poller)
        return -1;
    if (self->server)
        zpoller_add(poller, self->server);
    if (self->evaluator)
        zpoller_add(poller, self->evaluator);
    for (uint32_t j = 0; j < self->n_clients; j++)
        zpoller_add(poller, self->clients[j]);
    uint32_t waiting = (self->evaluator ? 1 : 0) + self->n_clients;
    bool server_done = false, stop_sent = false, failed = false, reason_set = false;
    unsigned signals_seen = hafl_signals_count();
    int rc = -1;
    double cum_up = 0, cum_down = 0;
    while (true) {
        if (self->server ? server_done : waiting == 0)
            break;
        void *which = zpoller_wait(poller, 200);
        //  A signal: hafl_signals (the hafl binary) counts it; CZMQ's own handler (programs
        //  that embed a node without it) raises zsys_interrupted.
        if (zsys_interrupted || hafl_signals_count() != signals_seen) {
            zsys_interrupted = 0;
            signals_seen = hafl_signals_count();
            if (stop_sent || !self->server)
                break;
            int sig = hafl_signals_last();
            zstr_sendx(self->server, "STOP",
                       sig == SIGTERM  ? "SIGTERM"
                       : sig == SIGINT ? "SIGINT"
                                       : "an interrupt",
                       NULL);
            stop_sent = true;
            continue;
        }
        if (!which)
            continue;
        zmsg_t *msg = zmsg_recv(which);
        if (!msg)
            continue;
        char *what = zmsg_popstr(msg);
        if (what && which == self->server && streq(what, "PROGRESS"))
            s_print_progress(self, msg, &cum_up, &cum_down);
        else if (what && which == self->server && streq(what, "DONE")) {
            char *status = zmsg_popstr(msg);
            char *digest = zmsg_popstr(msg);
            char *text = zmsg_popstr(msg);
            char *timing = zmsg_popstr(msg);
            snprintf(self->unreproducible, sizeof self->unreproducible, "%s",
                     timing ? timing : "");
            zstr_free(&timing);
            rc = status && streq(status, "0") ? 0 : -1;
            snprintf(hex, 65, "%s", digest ? digest : "");
            snprintf(reason, reasonlen, "%s", text ? text : "");
            zstr_free(&status);
            zstr_free(&digest);
            zstr_free(&text);
            server_done = true;
        } else if (what && streq(what, "DONE")) {
            if (waiting > 0)
                waiting--;
            if (!self->server) {
                //  A node without the server succeeds when every actor was told the run ended.
                char *text = zmsg_popstr(msg);
                bool ended = text && streq(text, "federation ended");
                if (!ended || reason_set == false) {
                    snprintf(reason, reasonlen, "%s", text ? text : "");
                    reason_set = !ended;
                }
                if (!ended)
                    failed = true;
                zstr_free(&text);
            }
        }
        zstr_free(&what);
        zmsg_destroy(&msg);
    }
    if (!self->server && waiting == 0)
        rc = failed ? -1 : 0;
    if (self->progress_open) {
        fprintf(self->progress, "\n");
        self->progress_open = false;
    }
    zpoller_destroy(&poller);
    if (self->logger)
        hafl_logger_flush(self->logger);
    return rc;
}

const char *hafl_node_run_dir(const hafl_node_t *self)
{
    return self->run_dir;
}

const char *hafl_node_run_id(const hafl_node_t *self)
{
    return self->run_id;
}

const hafl_endpoints_t *hafl_node_endpoints(const hafl_node_t *self)
{
    return &self->endpoints;
}

hafl_task_t *hafl_node_task(hafl_node_t *self)
{
    return self->task;
}

const char *hafl_node_unreproducible(const hafl_node_t *self)
{
    return self->unreproducible;
}
