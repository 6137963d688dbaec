/*  hafl_security: CURVE encryption and authentication for the bus's networked endpoints.

    Built from the topology's security section (runtime/hafl_topology.h). With security/curve
    off every function below is a no-op that succeeds, so callers need no branches. With it on:
    - security/server_cert names the server's certificate in CZMQ zcert format. It may be the
      public file (FILE, with the secret one beside it as FILE_secret on the server's host
      only, the layout `hafl keygen` writes) or the secret file itself (it holds both keys).
      Clients need only its public key; the server needs its secret key.
    - security/client_certs is the allow-list: a directory of public client certificates. The
      server admits a CURVE client only when its public key is in one of these files. Hidden
      files (starting with '.') and subdirectories are ignored, as CZMQ's zcertstore does.
    - security/client_cert is the clients' own secret certificate (FILE_secret, or FILE with
      FILE_secret beside it). Every client and the evaluator present it.
    Certificates are read strictly (size cap, ZPL syntax, 40-character Z85 keys, the secret key
    must derive the public key) and every failure is one line naming the file and the defect.

    Which endpoints: CURVE applies to every endpoint that is not inproc:// or ipc://. In-process
    traffic is trusted; ipc:// is local to one host and guarded by the socket file's
    permissions, and the topology loader refuses security/curve with placement/transport ipc,
    so with CURVE on, everything that crosses processes uses tcp:// and is covered. Transports
    other than these three (ws, tipc...) are covered too: unknown means networked.

    Authentication: hafl_security_serve starts CZMQ's zauth actor with the allow-list
    directory (zauth "CURVE" DIR). ZAP (RFC 27) has one handler per process, bound in the
    CZMQ context, and it checks every CURVE server socket of the process; libzmq lets CURVE
    clients in unchecked when no handler runs, so hafl_security_apply_server refuses to arm a
    socket before serve has succeeded. Refused peers: libzmq reports failed handshakes on a
    socket monitor; hafl_security_watch attaches one to a socket and hafl_security_refusal turns
    each event into a one-line reason (key not in the allow-list, peer without CURVE, wrong
    server key...) for the owner to log. The connecting side watches too
    (hafl_security_connect, hafl_security_refused): libzmq tries a refused handshake once (or,
    when the server cannot read it, again and again), so a client refused by the server would
    otherwise wait forever without a word. With serve's verbose flag zauth also prints each
    decision (with the peer's address) on stderr through zsys.

    Contract, in this order:
      1. hafl_security_new (topology) once per process; read-only afterwards.
      2. In the process that binds server sockets: hafl_security_serve, before any bind.
      3. Before zsock_bind of a server-role socket: hafl_security_apply_server (and, to log
         refusals, hafl_security_watch on that socket from its owning thread).
         Before zsock_connect of a client-role socket: hafl_security_apply_client (or
         hafl_security_connect, which also watches and connects).
         Options set after bind or connect do not affect that endpoint.
      4. Destroy the sockets (or hafl_security_unwatch), then hafl_security_destroy, which
         stops the authenticator: CURVE sockets still open afterwards admit nobody new.
    apply_* only read the object and may be called from any thread once step 2 is done; serve
    and destroy belong to the thread that created the object.
*/
#ifndef HAFL_SECURITY_H
#define HAFL_SECURITY_H

#include "hafl_topology.h"

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  ZAP domain set on server sockets; zauth checks CURVE keys in every domain.
#define HAFL_SECURITY_ZAP_DOMAIN "hafl"
//  Certificate files larger than this are refused before reading (a zcert file is ~300 bytes).
#define HAFL_SECURITY_MAX_CERT_BYTES 65536

typedef struct hafl_security_t hafl_security_t;

//  Reads and checks the certificates the topology names (nothing when security/curve is off).
//  The server's secret key is optional here (client hosts lack it; serve requires it); the
//  clients' secret key is required; every file in the allow-list must be a valid public
//  certificate (a secret key there is refused). Returns a new object the caller owns, or NULL
//  with a one-line reason in err naming the topology key and the file.
hafl_security_t *hafl_security_new(const hafl_topology_t *topology, char *err, size_t errlen);
//  Stops the authenticator if this object started it. NULL-safe; nulls the caller's pointer.
void hafl_security_destroy(hafl_security_t **self_p);

//  One certificate per client: security/client_cert may contain this token, replaced by each
//  client's index (the certificates `hafl keygen --clients N` writes); the evaluator then uses
//  security/evaluator_cert.
#define HAFL_SECURITY_INDEX_TOKEN "{index}"
//  What an allow-list certificate's metadata binds its key to.
#define HAFL_BOUND_NONE      (-1) //  any client place (a certificate shared by clients)
#define HAFL_BOUND_EVALUATOR (-2) //  the evaluator's place only
#define HAFL_BOUND_OPERATOR  (-3) //  no place: the operator's key for the control socket
//  (>= 0: that client index only)

//  The credentials one connecting actor presents: client `index` (>= 0), or the evaluator
//  (HAFL_BOUND_EVALUATOR): security/client_cert with {index} replaced, or
//  security/evaluator_cert. Only the server's public key and this one pair are read. For
//  apply_client/connect only. NULL with a one-line reason naming the key and the file.
hafl_security_t *hafl_security_new_peer(const hafl_topology_t *topology, int64_t index,
                                        char *err, size_t errlen);
//  Server side: what the allow-list binds the key (Z85 text, the connection's "User-Id") to,
//  in *bound (HAFL_BOUND_* or a client index). -1 when CURVE is off or the key is unknown.
int hafl_security_binding(const hafl_security_t *self, const char *public_key, int64_t *bound);
//  Whether some allow-list key is bound to this place (a client index or HAFL_BOUND_EVALUATOR):
//  then only that key may take it.
bool hafl_security_place_bound(const hafl_security_t *self, int64_t place);

//  Whether security/curve is on.
bool hafl_security_enabled(const hafl_security_t *self);
//  Whether CURVE applies to this endpoint: on, and the endpoint is neither inproc:// nor ipc://.
bool hafl_security_covers(const hafl_security_t *self, const char *endpoint);
//  Number of public certificates in the allow-list (0 when off).
size_t hafl_security_allowed(const hafl_security_t *self);
//  Z85 public keys (40 characters), for logs; "" when off or (server) unknown.
const char *hafl_security_server_key(const hafl_security_t *self);
const char *hafl_security_client_key(const hafl_security_t *self);

//  Starts the ZAP authenticator (zauth with CURVE over the allow-list directory) for this
//  process. Idempotent on one object. Needs the server's secret key and a non-empty
//  allow-list. verbose: zauth prints every decision on stderr. Returns 0, or -1 with err (also
//  when another authenticator already runs in this process).
int hafl_security_serve(hafl_security_t *self, bool verbose, char *err, size_t errlen);

//  Server role, before zsock_bind (sock, "%s", endpoint): CURVE server with the server's
//  secret key and the ZAP domain. No-op (0) when off or the endpoint is not covered. -1 with
//  err when serve has not run on this object or libzmq refuses an option.
int hafl_security_apply_server(const hafl_security_t *self, zsock_t *sock, const char *endpoint,
                               char *err, size_t errlen);
//  Client role, before zsock_connect (sock, "%s", endpoint): the clients' certificate and the
//  server's public key. No-op (0) when off or not covered; -1 with err if libzmq refuses.
int hafl_security_apply_client(const hafl_security_t *self, zsock_t *sock, const char *endpoint,
                               char *err, size_t errlen);

//  Reports the outcome of sock's handshakes (either role, any security mechanism), and its
//  accepted and closed connections: returns a new PAIR socket, owned by the caller and used in
//  sock's thread, that becomes readable once per such event; or NULL with err. Call it from the thread owning
//  sock, before bind/connect. Read it whenever it is readable (its queue is unbounded so
//  libzmq's I/O thread never waits on it) and end it with hafl_security_unwatch, never with
//  zsock_destroy alone while sock lives.
zsock_t *hafl_security_watch(zsock_t *sock, char *err, size_t errlen);

//  What one watch event says.
typedef enum {
    HAFL_HANDSHAKE_OTHER = 0, //  not a handshake outcome
    HAFL_HANDSHAKE_OK,        //  a handshake succeeded
    HAFL_HANDSHAKE_REFUSED,   //  refused for good: the authenticator said no (ZAP 400/500),
                              //  or the two sides' security does not fit (mechanism, keys)
    HAFL_HANDSHAKE_LOST,      //  the connection broke before the handshake finished, or the
                              //  authenticator failed for now (ZAP 300): may pass on a retry
} hafl_handshake_t;

//  Reads one event from a watch socket and returns its hafl_handshake_t, with a one-line reason
//  in why for REFUSED and LOST; -1 if nothing could be read or the event is malformed.
//  connecting: sock connects, and the reason names the server's endpoint ("the server at
//  tcp://... refused the CURVE handshake: ..."); otherwise it names sock's own endpoint.
int hafl_security_handshake(zsock_t *watch, bool connecting, char *why, size_t whylen);
//  One raw event of a watch socket: libzmq's event id (ZMQ_EVENT_*), its value (for
//  ZMQ_EVENT_ACCEPTED and ZMQ_EVENT_DISCONNECTED the connection's file descriptor, for failed
//  handshakes the reason code) and the watched socket's endpoint. Watches report handshakes
//  and, besides, accepted and closed connections (what a server logs about its peers).
typedef struct {
    uint16_t event;
    uint32_t value;
    char endpoint[256];
} hafl_watch_event_t;
//  Reads one event: 0, or -1 if nothing could be read or it is malformed.
int hafl_security_watch_event(zsock_t *watch, hafl_watch_event_t *out);
//  hafl_security_handshake's verdict and reason for an event already read.
int hafl_security_describe(const hafl_watch_event_t *event, bool connecting, char *why,
                           size_t whylen);
//  Server side: reads one event. Returns 1 with a one-line reason in why for a refused or
//  failed handshake, 0 for any other event, -1 as above.
int hafl_security_refusal(zsock_t *watch, char *why, size_t whylen);

//  Handshakes lost in a row after which a connecting side gives up (see hafl_security_refused).
#define HAFL_SECURITY_MAX_LOST 5
//  Connecting side (self: the socket's security, for the hint; NULL is off): reads one event
//  and says whether to give up on the server. *lost (0 at the start) counts the handshakes
//  lost in a row; a successful one resets it. Returns 1 with a one-line reason in why when the
//  server refused the handshake, or when it was lost HAFL_SECURITY_MAX_LOST times in a row (a
//  CURVE server that cannot read the handshake, another server key or no CURVE on this side,
//  drops the connection without a word; the reason says which is likely); 0 to go on; -1 as
//  above. A server that is not up yet (nothing listening) causes no handshake and so no
//  event: clients may start first.
int hafl_security_refused(const hafl_security_t *self, zsock_t *watch, uint32_t *lost, char *why,
                          size_t whylen);

//  Connecting side, in one call: arms sock with the client role (hafl_security_apply_client),
//  watches its handshakes unless the endpoint is inproc:// (*watch_p: the watch, owned by the
//  caller, or NULL), and connects. 0, or -1 with err and *watch_p NULL.
int hafl_security_connect(const hafl_security_t *self, zsock_t *sock, const char *endpoint,
                          zsock_t **watch_p, char *err, size_t errlen);
//  Stops monitoring sock (NULL if it is already destroyed) and destroys *watch_p. NULL-safe.
void hafl_security_unwatch(zsock_t *sock, zsock_t **watch_p);

#endif
