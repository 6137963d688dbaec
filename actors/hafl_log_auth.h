/*  hafl_log_auth: who may push events into the logger.

    The logger's PULL endpoint is reachable by anything that can reach its address, and an
    event it accepts lands in events.jsonl (a forged `final` line would read as the run's
    result). So over every transport that crosses processes (ipc://, tcp://) the logger admits
    only the federation's own emitters:
    - security/curve on: the PULL socket is a CURVE server like the server's ROUTER
      (hafl_security_apply_server) and emitters present the clients' certificate, which the
      process's authenticator checks against the allow-list.
    - security/curve off: ZeroMQ's PLAIN mechanism with user "hafl-log" and the run's log token
      as password, checked by a small ZAP handler this module runs in the logger's process (no
      other authenticator runs there when CURVE is off). The token is the environment's
      HAFL_LOG_TOKEN when set (`hafl run --processes` sets a fresh random one for the nodes it
      starts; across hosts, give every `hafl node` the same secret), otherwise it is derived
      from the topology's settings (SHA-256 over the lines resume compares), which keeps out a
      stray or misdirected PUSH but not someone who holds the topology file: across hosts use
      CURVE or a shared HAFL_LOG_TOKEN.
    inproc:// endpoints are never armed: only the process itself can reach them.
    A refused emitter's handshake fails; the logger watches its socket and writes each refusal
    as a `log-refused` line (hafl_logger.h).

    Contract: one object per process (hafl_log_auth_new), read-only afterwards; in the process
    that runs the logger, hafl_log_auth_serve once before the logger binds, and destroy it
    after the logger ends. apply_* may be called from any thread once serve has run.
*/
#ifndef HAFL_LOG_AUTH_H
#define HAFL_LOG_AUTH_H

#include "hafl_security.h"
#include "hafl_topology.h"

#include <czmq.h>
#include <stddef.h>

#define HAFL_LOG_AUTH_USER      "hafl-log"
#define HAFL_LOG_AUTH_ENV       "HAFL_LOG_TOKEN"
#define HAFL_LOG_AUTH_MAX_TOKEN 255 //  bytes of a HAFL_LOG_TOKEN (PLAIN's password limit)

typedef struct hafl_log_auth_t hafl_log_auth_t;

//  The process's log credentials: the token (HAFL_LOG_TOKEN or derived) and, with CURVE, the
//  security object (borrowed; must outlive this one). NULL with a one-line reason in err (a
//  HAFL_LOG_TOKEN that is empty or too long, or no memory).
hafl_log_auth_t *hafl_log_auth_new(const hafl_topology_t *topology,
                                   const hafl_security_t *security, char *err, size_t errlen);
void hafl_log_auth_destroy(hafl_log_auth_t **self_p);
//  The same credentials presenting another actor's certificate (one certificate per client:
//  hafl_security_new_peer), for emitters only. security is borrowed. NULL when out of memory.
hafl_log_auth_t *hafl_log_auth_with(const hafl_log_auth_t *base, const hafl_security_t *security);

//  In the logger's process, before the logger binds: with CURVE off, starts the PLAIN ZAP
//  handler (the process's only authenticator then). No-op with CURVE on (the security object's
//  authenticator serves). 0, or -1 with err.
int hafl_log_auth_serve(hafl_log_auth_t *self, char *err, size_t errlen);

//  Whether an event that arrived over a connection (not in process) may speak as `actor`.
//  The actors of the logger's own process (server, aggregator, logger) log in process, so
//  their names never come over a connection; with CURVE, a key the allow-list binds to a
//  place speaks only as that place ("client-K", "evaluator"). user_id: the connection's
//  authenticated "User-Id" (NULL when unknown). false with the reason in why.
bool hafl_log_auth_actor_ok(const hafl_log_auth_t *self, const char *actor, const char *user_id,
                            char *why, size_t whylen);
//  Whether the admission is CURVE (else PLAIN with the log token).
bool hafl_log_auth_curve(const hafl_log_auth_t *self);

//  Logger side, before zsock_bind of its PULL socket to endpoint.
int hafl_log_auth_apply_server(const hafl_log_auth_t *self, zsock_t *sock, const char *endpoint,
                               char *err, size_t errlen);
//  Emitter side, before zsock_connect of a PUSH socket to endpoint. NULL self: nothing armed.
int hafl_log_auth_apply_client(const hafl_log_auth_t *self, zsock_t *sock, const char *endpoint,
                               char *err, size_t errlen);

#endif
