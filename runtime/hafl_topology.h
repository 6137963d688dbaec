/*  hafl_topology: a federation described by a ZPL topology file, loaded and fully validated.

    hafl_topology_load parses the file with CZMQ zconfig, applies command-line overrides
    ("key/path=value", the same paths as in the file), fills every field below with its default
    where the file is silent, and validates everything before anything starts: unknown keys,
    wrong types, out-of-range values, rank budgets above R, a rank list whose length differs
    from the client count, duplicate endpoints, missing assets. The first error is reported as one
    line "FILE:LINE: KEY: what is wrong" (LINE is 0 for overrides and for defaults; a required
    key the file lacks, such as a tier's share, is reported at the line of its section).
    topologies/README.md documents every key with its type, default and range.

    Ownership: the loader returns a topology the caller owns; destroy frees it and every string
    in it. A loaded topology is immutable and may be read from any thread.
*/
#ifndef HAFL_TOPOLOGY_H
#define HAFL_TOPOLOGY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define HAFL_TOPOLOGY_MAX_CLIENTS 100000u
#define HAFL_TOPOLOGY_MAX_HOSTS 64u

typedef enum { HAFL_DELAY_FIXED = 0, HAFL_DELAY_UNIFORM = 1, HAFL_DELAY_EXPONENTIAL = 2 } hafl_delay_dist_t;
typedef enum { HAFL_BYZANTINE_SCALE = 0, HAFL_BYZANTINE_SIGN_FLIP = 1, HAFL_BYZANTINE_NOISE = 2 } hafl_byzantine_attack_t;
typedef enum { HAFL_PLACEMENT_INPROC = 0, HAFL_PLACEMENT_PROCESSES = 1, HAFL_PLACEMENT_HOSTS = 2 } hafl_placement_mode_t;

typedef struct {
    char *name;             //  placement/hosts/<name>
    char *address;          //  IP or hostname other hosts use to reach it (tcp mode)
    bool server;            //  runs server, aggregator, logger
    bool evaluator;
    uint32_t client_first;  //  clients [client_first, client_last] run here; first > last: none
    uint32_t client_last;
} hafl_host_t;

typedef struct {
    char *path;             //  the topology file as given
    char *name;             //  its basename without .zpl: names the run folder
    uint64_t seed;          //  seed                      default 1

    struct {
        char *kind;         //  model/kind                "llama" | "synthetic"       default llama
        char *checkpoint;   //  model/checkpoint          asset name or path          default stories260K.bin
        char *tokenizer;    //  model/tokenizer           asset name or path          default tok512.bin,
                            //                            or a GGUF checkpoint's own file (its metadata)
                            //                            when not given or given empty
        char *targets;      //  model/targets             subset of wq,wk,wv,wo,w1,w2,w3 default "wq,wk,wv,wo"
        uint32_t rank;      //  model/rank                R, 1..256                   default 8
        float alpha;        //  model/alpha               > 0                         default 16
        uint32_t dim;       //  model/dim                 synthetic feature width     default 32
        uint32_t classes;   //  model/classes             synthetic classes           default 4
        char *score;        //  model/score               "sensitivity" | "ibar"      default sensitivity
        bool collapse_spaces; // model/collapse_spaces    SentencePiece space normalisation, default false
    } model;

    struct {
        char *dataset;          //  data/dataset          "20news" | "synthetic"      default 20news
        char *path;             //  data/path             asset name or path          default 20news-bydate.tar.gz
        char *split;            //  data/split            "iid" | "dirichlet"         default iid
        float dirichlet_alpha;  //  data/dirichlet_alpha  > 0                         default 0.5
        uint32_t max_tokens;    //  data/max_tokens       1..4096                     default 128
        uint32_t train_limit;   //  data/train_limit      0 = all training documents  default 0
        uint32_t test_limit;    //  data/test_limit       0 = all test documents      default 0
        uint32_t validation;    //  data/validation       training docs held out instead of test, default 0
        bool keep_empty;        //  data/keep_empty       keep documents empty after cleaning, default true
        uint32_t train_size;    //  data/train_size       synthetic: training samples in all default 4096
        uint32_t test_size;     //  data/test_size        synthetic: test samples      default 1024
    } data;

    struct {
        uint32_t rounds;        //  server/rounds         1..100000                   default 50
        uint32_t participants;  //  server/participants   per round, 0 = all clients  default 0
        uint32_t deadline_ms;   //  server/deadline_ms    1..86400000                 default 600000
        uint32_t min_reports;   //  server/min_reports    k of n, 0 = all participants default 0
        uint32_t join_timeout_ms; // server/join_timeout_ms  0..86400000, 0 = wait forever default 3600000
        char *scheme;           //  server/scheme         truncate|truncate-prefix|freeze|freeze-random default freeze
        char *aggregator;       //  server/aggregator     adaptive|zeropad|zeropad-norm|fedavg|flexlora|flora|median|trimmed-mean default adaptive
        uint32_t heartbeat_ms;  //  server/heartbeat_ms   50..60000                   default 1000
        uint32_t heartbeat_misses; // server/heartbeat_misses  dead after this many    default 5
        char *endpoint;         //  server/endpoint       clients connect here ("" = derived from placement)
        char *control;          //  server/control        `hafl ctl` endpoint ("" = derived)
        uint32_t checkpoint_every; // server/checkpoint_every rounds, 0 = never       default 1
        uint32_t max_samples;   //  server/max_samples    a HELLO's n_samples cap, 0 = derived default 0
        float trim;             //  server/trim           trimmed-mean's share cut at each end, 0..<0.5 default 0.2
        float clip_norm;        //  server/clip_norm      bound on each rank-1 and head delta, 0 = off default 0
    } server;

    struct {
        uint32_t count;         //  clients/count         1..100000                   default 10
        uint32_t *ranks;        //  [count] resolved from clients/ranks or clients/tiers
        uint32_t local_epochs;  //  clients/local_epochs  used when local_steps is 0  default 1
        uint32_t local_steps;   //  clients/local_steps   0 = epochs                  default 0
        uint32_t batch;         //  clients/batch         1..4096                     default 8
        float lr;               //  clients/lr            > 0                         default 1e-3
        float weight_decay;     //  clients/weight_decay  >= 0                        default 0.01
        uint32_t threads;       //  clients/threads       worker threads per trainer  default 1
    } clients;

    struct {
        float straggler_share;      //  faults/stragglers/share      0..1             default 0
        hafl_delay_dist_t delay_dist;   // faults/stragglers/delay   fixed|uniform|exponential default uniform
        uint32_t delay_min_ms;      //  faults/stragglers/min_ms                       default 0
        uint32_t delay_max_ms;      //  faults/stragglers/max_ms (mean for exponential) default 1000
        float dropout;              //  faults/dropout               per round, 0..1  default 0
        float crash;                //  faults/crash                 per round, 0..1  default 0
        uint32_t rejoin_rounds;     //  faults/rejoin_rounds         rounds down after a crash, default 1
        float byzantine;            //  faults/byzantine             share of clients, fixed for the run, 0..1 default 0
        hafl_byzantine_attack_t byzantine_attack; // faults/byzantine_attack scale|sign-flip|noise default scale
        float byzantine_scale;      //  faults/byzantine_scale       the attack's factor, > 0  default 10
    } faults;

    struct {
        bool enabled;               //  evaluator/enabled        default true
        uint32_t max_examples;      //  evaluator/max_examples   0 = whole test set   default 0
        bool client_start;          //  evaluator/client_start   also score each client's starting model, default false
    } evaluator;

    struct {
        char *run_dir;              //  logger/run_dir   root of run folders         default "runs"
        char *pull;                 //  logger/pull      events in ("" = derived)
        char *pub;                  //  logger/pub       events out for `hafl tail` ("" = derived)
        bool echo;                  //  logger/echo      also print events to stderr  default false
    } logger;

    struct {
        hafl_placement_mode_t mode; //  placement/mode   inproc|processes|hosts      default inproc
        char *transport;            //  placement/transport   ipc|tcp               default ipc
        uint32_t base_port;         //  placement/base_port   first tcp port         default 5670
        uint32_t n_hosts;
        hafl_host_t *hosts;         //  placement/hosts/<name>/{address,server,evaluator,clients}
    } placement;

    struct {
        bool curve;                 //  security/curve        default false
        char *server_cert;          //  security/server_cert  zcert secret file
        char *client_certs;         //  security/client_certs directory of allowed public certs
        char *client_cert;          //  security/client_cert  the clients' own secret cert; may
                                    //  hold {index}: one per client (hafl keygen --clients)
        char *evaluator_cert;       //  security/evaluator_cert  the evaluator's, "" = client_cert
        bool insecure;              //  security/insecure     allow hosts over tcp without CURVE, default false
    } security;
} hafl_topology_t;

typedef struct {
    char text[512];                 //  "FILE:LINE: KEY: reason"
} hafl_topology_error_t;

//  Load, override and validate. overrides: n strings "key/path=value". Returns NULL with err.
hafl_topology_t *hafl_topology_load (const char *path, const char *const *overrides,
                                     size_t n_overrides, hafl_topology_error_t *err);
void hafl_topology_destroy (hafl_topology_t **self_p);

//  Prints every resolved setting, one "key/path = value" line each, in the order of
//  topologies/README.md: clients/ranks as the resolved per-client list, placement hosts with
//  their resolved client ranges, empty strings as "".
void hafl_topology_print (const hafl_topology_t *self, FILE *out);

//  0 when the aggregation strategy (a known name) suits this federation's rank budgets; else
//  -1 with why. The loader checks server/aggregator with it, and `hafl ctl swap-aggregator`
//  the strategy it would swap in, so the two never disagree.
int hafl_topology_strategy_fits (const hafl_topology_t *self, const char *strategy, char *why,
                                 size_t whylen);

//  Takes every "--set KEY=VALUE" (or "--set=KEY=VALUE") out of argv, compacting argv in place
//  (*argc_p updated, argv[*argc_p] = NULL), so commands share one way of collecting overrides.
//  *overrides_p gets a new array of the n pointers into argv's strings; the caller frees the
//  array only. Returns 0, or -1 with a one-line reason in err (a --set without KEY=VALUE).
int hafl_topology_take_overrides (int *argc_p, char **argv, const char ***overrides_p,
                                  size_t *n_p, hafl_topology_error_t *err);

#endif
