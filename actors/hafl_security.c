/*  hafl_security: CURVE certificates, the ZAP authenticator and socket roles (see the header
    for the contract). Certificates are read with zconfig and checked here rather than through
    zcert_load, which accepts a file without keys or with a secret key that does not belong to
    its public key, and says nothing about why a file is unusable.
*/
#include "hafl_security.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

//  The endpoint every ZAP handler binds (RFC 27); zauth binds it in the CZMQ context.
#define S_ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define S_KEY_BYTES    32
#define S_KEY_TEXT     40 //  Z85 characters of a 32-byte key

//  One certificate's keys; secret_key is meaningful only when has_secret.
typedef struct {
    uint8_t public_key[S_KEY_BYTES];
    uint8_t secret_key[S_KEY_BYTES];
    char public_text[S_KEY_TEXT + 1];
    bool has_secret;
    int64_t bound; //  HAFL_BOUND_*, or the client index its metadata binds it to
} s_keys_t;

struct hafl_security_t {
    bool curve;
    s_keys_t server;  //  has_secret only where the server's secret file is present
    s_keys_t client;  //  always has_secret when curve is on
    char *allow_dir;  //  security/client_certs
    size_t n_allowed; //  public certificates found there
    s_keys_t *allowed; //  [n_allowed] their public keys and bindings (server side)
    zactor_t *auth;   //  zauth, once hafl_security_serve succeeded
};

static int s_fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

//  Reads curve/<name> of a loaded certificate into 32 bytes (and its text). Returns 1 when
//  present and valid, 0 when absent, -1 with err when present but malformed.
static int s_read_key(zconfig_t *root, const char *name, uint8_t *key, char *text, const char *what,
                      const char *path, char *err, size_t errlen)
{
    char item[32];
    snprintf(item, sizeof item, "curve/%s", name);
    const char *value = zconfig_get(root, item, NULL);
    if (!value)
        return 0;
    size_t len = strlen(value);
    if (len != S_KEY_TEXT)
        return s_fail(err, errlen, "%s: %s: curve/%s has %zu characters, not the %d of a Z85 key",
                      what, path, name, len, S_KEY_TEXT);
    if (!zmq_z85_decode(key, value))
        return s_fail(err, errlen, "%s: %s: curve/%s is not valid Z85", what, path, name);
    if (text)
        memcpy(text, value, S_KEY_TEXT + 1);
    return 1;
}

//  Reads one certificate file: size-capped regular file, ZPL, a valid public key, and a secret
//  key (if any) that derives that public key. what names the topology key in errors.
//  The place a certificate's metadata binds it to (`hafl keygen --clients`): role "evaluator",
//  or role "client" with an index; anything else binds to nothing (a shared certificate).
static int s_read_binding(zconfig_t *root, s_keys_t *keys, const char *what, const char *path,
                          char *err, size_t errlen)
{
    keys->bound = HAFL_BOUND_NONE;
    const char *role = zconfig_get(root, "metadata/role", NULL);
    const char *index = zconfig_get(root, "metadata/index", NULL);
    if (role && strcmp(role, "evaluator") == 0) {
        keys->bound = HAFL_BOUND_EVALUATOR;
        return 0;
    }
    if (role && strcmp(role, "operator") == 0) {
        keys->bound = HAFL_BOUND_OPERATOR;
        return 0;
    }
    if (!index)
        return 0;
    char *end = NULL;
    errno = 0;
    unsigned long long value = strtoull(index, &end, 10);
    if (errno || !*index || *end || index[0] == '-' || value > UINT32_MAX - 2)
        return s_fail(err, errlen, "%s: %s: metadata/index '%s' is not a client index", what,
                      path, index);
    keys->bound = (int64_t)value;
    return 0;
}

static int s_read_cert(const char *what, const char *path, s_keys_t *keys, char *err, size_t errlen)
{
    memset(keys, 0, sizeof *keys);
    struct stat st;
    if (stat(path, &st) != 0)
        return s_fail(err, errlen, "%s: %s: %s", what, path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return s_fail(err, errlen, "%s: %s is not a regular file", what, path);
    if (st.st_size > HAFL_SECURITY_MAX_CERT_BYTES)
        return s_fail(err, errlen, "%s: %s: %lld bytes, more than a certificate may hold (%d)",
                      what, path, (long long)st.st_size, HAFL_SECURITY_MAX_CERT_BYTES);
    //  Read once and parse what was checked: a certificate is ZPL text, and control bytes
    //  mean a wrong file (zconfig would echo them into the log).
    FILE *f = fopen(path, "rb");
    if (!f)
        return s_fail(err, errlen, "%s: %s: %s", what, path, strerror(errno));
    char *text = malloc(HAFL_SECURITY_MAX_CERT_BYTES + 2);
    size_t len = text ? fread(text, 1, HAFL_SECURITY_MAX_CERT_BYTES + 1, f) : 0;
    int rc = 0;
    if (!text)
        rc = s_fail(err, errlen, "%s: %s: out of memory", what, path);
    else if (ferror(f))
        rc = s_fail(err, errlen, "%s: %s: read error", what, path);
    else if (len > HAFL_SECURITY_MAX_CERT_BYTES)
        rc = s_fail(err, errlen, "%s: %s: grew past %d bytes while being read", what, path,
                    HAFL_SECURITY_MAX_CERT_BYTES);
    fclose(f);
    for (size_t i = 0; rc == 0 && i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7F)
            rc = s_fail(err, errlen, "%s: %s: byte 0x%02x at offset %zu: not a text certificate",
                        what, path, c, i);
    }
    zconfig_t *root = NULL;
    if (rc == 0) {
        text[len] = '\0';
        root = zconfig_str_load(text);
        if (!root)
            rc = s_fail(err, errlen, "%s: %s: not a readable ZPL certificate", what, path);
    }
    if (text)
        explicit_bzero(text, len);
    free(text);
    if (rc)
        return -1;
    rc = s_read_key(root, "public-key", keys->public_key, keys->public_text, what, path, err,
                    errlen);
    if (rc == 0)
        rc = s_fail(err, errlen, "%s: %s: no curve/public-key (not a zcert certificate)", what,
                    path);
    if (rc == 1) {
        char secret_text[S_KEY_TEXT + 1];
        rc = s_read_key(root, "secret-key", keys->secret_key, secret_text, what, path, err, errlen);
        if (rc == 1) {
            char derived[S_KEY_TEXT + 1];
            if (zmq_curve_public(derived, secret_text) != 0)
                rc = s_fail(err, errlen, "%s: %s: libzmq cannot derive CURVE keys: %s", what, path,
                            zmq_strerror(zmq_errno()));
            else if (strcmp(derived, keys->public_text) != 0)
                rc = s_fail(err, errlen,
                            "%s: %s: curve/secret-key does not belong to curve/public-key", what,
                            path);
            else
                keys->has_secret = true;
            explicit_bzero(secret_text, sizeof secret_text);
        }
    }
    if (rc >= 0 && s_read_binding(root, keys, what, path, err, errlen))
        rc = -1;
    zconfig_destroy(&root);
    if (rc < 0)
        explicit_bzero(keys, sizeof *keys);
    return rc < 0 ? -1 : 0;
}

//  A certificate given as FILE or FILE_secret: reads path and, when it lacks the secret key
//  and FILE_secret exists beside it, that file (whose public key must be the same).
//  need_secret: a missing secret key is an error.
static int s_read_pair(const char *what, const char *path, bool need_secret, s_keys_t *keys,
                       char *err, size_t errlen)
{
    if (!path || !*path)
        return s_fail(err, errlen, "%s: missing (needed when security/curve is on)", what);
    if (s_read_cert(what, path, keys, err, errlen))
        return -1;
    if (keys->has_secret)
        return 0;
    char sibling[PATH_MAX];
    if ((size_t)snprintf(sibling, sizeof sibling, "%s_secret", path) >= sizeof sibling)
        return s_fail(err, errlen, "%s: %s: path too long", what, path);
    struct stat st;
    if (stat(sibling, &st) != 0) {
        if (!need_secret)
            return 0;
        return s_fail(err, errlen, "%s: %s holds no secret key and %s does not exist", what, path,
                      sibling);
    }
    s_keys_t secret;
    if (s_read_cert(what, sibling, &secret, err, errlen))
        return -1;
    int rc = 0;
    if (!secret.has_secret)
        rc = s_fail(err, errlen, "%s: %s holds no curve/secret-key", what, sibling);
    else if (memcmp(secret.public_key, keys->public_key, S_KEY_BYTES) != 0)
        rc = s_fail(err, errlen, "%s: %s is not the secret certificate of %s (public keys differ)",
                    what, sibling, path);
    else
        *keys = secret;
    explicit_bzero(&secret, sizeof secret);
    return rc;
}

//  Checks every visible regular file of the allow-list directory; counts them in *n.
static int s_read_allow_list(const char *what, const char *dir, size_t *n, s_keys_t **allowed,
                             char *err, size_t errlen)
{
    *n = 0;
    size_t cap = 0;
    if (!dir || !*dir)
        return s_fail(err, errlen, "%s: missing (needed when security/curve is on)", what);
    DIR *d = opendir(dir);
    if (!d)
        return s_fail(err, errlen, "%s: %s: %s", what, dir, strerror(errno));
    int rc = 0;
    struct dirent *entry;
    while (rc == 0 && (entry = readdir(d)) != NULL) {
        if (entry->d_name[0] == '.')
            continue;
        char path[PATH_MAX];
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, entry->d_name) >= sizeof path) {
            rc = s_fail(err, errlen, "%s: %s/%s: path too long", what, dir, entry->d_name);
            break;
        }
        struct stat st;
        if (stat(path, &st) != 0) {
            rc = s_fail(err, errlen, "%s: %s: %s", what, path, strerror(errno));
            break;
        }
        if (!S_ISREG(st.st_mode))
            continue; //  zcertstore does not descend into subdirectories either
        s_keys_t keys;
        rc = s_read_cert(what, path, &keys, err, errlen);
        if (rc == 0 && keys.has_secret)
            rc = s_fail(err, errlen,
                        "%s: %s holds a secret key; the allow-list takes public certificates "
                        "only",
                        what, path);
        if (rc == 0 && *n == cap) {
            cap = cap ? 2 * cap : 16;
            s_keys_t *grown = realloc(*allowed, cap * sizeof *grown);
            if (!grown)
                rc = s_fail(err, errlen, "%s: out of memory", what);
            else
                *allowed = grown;
        }
        if (rc == 0)
            (*allowed)[(*n)++] = keys;
        explicit_bzero(&keys, sizeof keys);
    }
    closedir(d);
    return rc;
}

//  An object for the topology's security/curve setting, with nothing read yet; NULL with err
//  when there is no topology, no memory, or CURVE is on and this libzmq lacks it.
static hafl_security_t *s_new(const hafl_topology_t *topology, char *err, size_t errlen)
{
    if (!topology) {
        s_fail(err, errlen, "security: no topology");
        return NULL;
    }
    hafl_security_t *self = calloc(1, sizeof *self);
    if (!self) {
        s_fail(err, errlen, "security: out of memory");
        return NULL;
    }
    self->curve = topology->security.curve;
    if (self->curve && !zmq_has("curve")) {
        s_fail(err, errlen, "security/curve: this libzmq was built without CURVE");
        free(self);
        return NULL;
    }
    return self;
}

hafl_security_t *hafl_security_new(const hafl_topology_t *topology, char *err, size_t errlen)
{
    hafl_security_t *self = s_new(topology, err, errlen);
    if (!self || !self->curve)
        return self;
    int rc = s_read_pair("security/server_cert", topology->security.server_cert, false,
                         &self->server, err, errlen);
    //  One certificate per client ({index} in the path): each client actor loads its own
    //  (hafl_security_new_peer); this object holds none.
    const char *client_cert = topology->security.client_cert;
    if (rc == 0 && !(client_cert && strstr(client_cert, HAFL_SECURITY_INDEX_TOKEN)))
        rc = s_read_pair("security/client_cert", topology->security.client_cert, true,
                         &self->client, err, errlen);
    if (rc == 0)
        rc = s_read_allow_list("security/client_certs", topology->security.client_certs,
                               &self->n_allowed, &self->allowed, err, errlen);
    if (rc == 0) {
        self->allow_dir = strdup(topology->security.client_certs);
        if (!self->allow_dir)
            rc = s_fail(err, errlen, "security: out of memory");
    }
    if (rc)
        hafl_security_destroy(&self);
    return self;
}

void hafl_security_destroy(hafl_security_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hafl_security_t *self = *self_p;
    zactor_destroy(&self->auth);
    free(self->allow_dir);
    free(self->allowed);
    explicit_bzero(self, sizeof *self);
    free(self);
    *self_p = NULL;
}

bool hafl_security_enabled(const hafl_security_t *self)
{
    return self && self->curve;
}

bool hafl_security_covers(const hafl_security_t *self, const char *endpoint)
{
    if (!hafl_security_enabled(self))
        return false;
    if (!endpoint)
        return true; //  unknown transport: treat as networked
    return strncmp(endpoint, "inproc://", 9) != 0 && strncmp(endpoint, "ipc://", 6) != 0;
}

size_t hafl_security_allowed(const hafl_security_t *self)
{
    return hafl_security_enabled(self) ? self->n_allowed : 0;
}

const char *hafl_security_server_key(const hafl_security_t *self)
{
    return hafl_security_enabled(self) ? self->server.public_text : "";
}

const char *hafl_security_client_key(const hafl_security_t *self)
{
    return hafl_security_enabled(self) ? self->client.public_text : "";
}

int hafl_security_serve(hafl_security_t *self, bool verbose, char *err, size_t errlen)
{
    if (!hafl_security_enabled(self) || self->auth)
        return 0;
    if (!self->server.has_secret)
        return s_fail(err, errlen,
                      "security/server_cert: no secret key on this host (neither the file nor "
                      "FILE_secret beside it holds one): cannot run the server");
    if (self->n_allowed == 0)
        return s_fail(err, errlen,
                      "security/client_certs: %s holds no certificate: no client "
                      "could join",
                      self->allow_dir);
    //  zauth aborts the process when it cannot bind the ZAP endpoint; find out first. An inproc
    //  unbind releases the name at once, so zauth can take it right after.
    zsock_t *probe = zsock_new(ZMQ_REP);
    if (!probe)
        return s_fail(err, errlen, "security: cannot create a socket");
    if (zmq_bind(zsock_resolve(probe), S_ZAP_ENDPOINT) != 0) {
        int e = zmq_errno();
        zsock_destroy(&probe);
        return s_fail(err, errlen, "security: cannot start the authenticator: %s%s",
                      zmq_strerror(e),
                      e == EADDRINUSE ? " (another ZAP handler runs in this process)" : "");
    }
    zmq_unbind(zsock_resolve(probe), S_ZAP_ENDPOINT);
    zsock_destroy(&probe);
    self->auth = zactor_new(zauth, NULL);
    if (!self->auth)
        return s_fail(err, errlen, "security: cannot start the authenticator (zauth)");
    if (verbose) {
        zstr_send(self->auth, "VERBOSE");
        zsock_wait(self->auth);
    }
    zstr_sendx(self->auth, "CURVE", self->allow_dir, NULL);
    zsock_wait(self->auth);
    return 0;
}

static int s_setopt(void *handle, int option, const void *value, size_t len, const char *what,
                    const char *endpoint, char *err, size_t errlen)
{
    if (zmq_setsockopt(handle, option, value, len) == 0)
        return 0;
    return s_fail(err, errlen, "security: %s for %s: %s", what, endpoint ? endpoint : "?",
                  zmq_strerror(zmq_errno()));
}

int hafl_security_apply_server(const hafl_security_t *self, zsock_t *sock, const char *endpoint,
                               char *err, size_t errlen)
{
    if (!hafl_security_covers(self, endpoint))
        return 0;
    if (!self->auth)
        return s_fail(err, errlen,
                      "security: %s: CURVE server socket before hafl_security_serve (no "
                      "authenticator would check its clients)",
                      endpoint ? endpoint : "?");
    void *h = zsock_resolve(sock);
    int one = 1;
    if (s_setopt(h, ZMQ_ZAP_DOMAIN, HAFL_SECURITY_ZAP_DOMAIN, strlen(HAFL_SECURITY_ZAP_DOMAIN),
                 "ZAP domain", endpoint, err, errlen) ||
        s_setopt(h, ZMQ_CURVE_SERVER, &one, sizeof one, "CURVE server", endpoint, err, errlen) ||
        s_setopt(h, ZMQ_CURVE_SECRETKEY, self->server.secret_key, S_KEY_BYTES, "CURVE secret key",
                 endpoint, err, errlen))
        return -1;
    return 0;
}

int hafl_security_apply_client(const hafl_security_t *self, zsock_t *sock, const char *endpoint,
                               char *err, size_t errlen)
{
    if (!hafl_security_covers(self, endpoint))
        return 0;
    if (!self->client.has_secret)
        return s_fail(err, errlen,
                      "security/client_cert: one certificate per client ({index}); this "
                      "connection has none of its own (hafl_security_new_peer)");
    void *h = zsock_resolve(sock);
    if (s_setopt(h, ZMQ_CURVE_SERVERKEY, self->server.public_key, S_KEY_BYTES, "CURVE server key",
                 endpoint, err, errlen) ||
        s_setopt(h, ZMQ_CURVE_PUBLICKEY, self->client.public_key, S_KEY_BYTES, "CURVE public key",
                 endpoint, err, errlen) ||
        s_setopt(h, ZMQ_CURVE_SECRETKEY, self->client.secret_key, S_KEY_BYTES, "CURVE secret key",
                 endpoint, err, errlen))
        return -1;
    return 0;
}

zsock_t *hafl_security_watch(zsock_t *sock, char *err, size_t errlen)
{
    zsock_t *watch = zsock_new(ZMQ_PAIR);
    if (!watch) {
        s_fail(err, errlen, "security: cannot create a watch socket");
        return NULL;
    }
    //  rcvhwm 0 makes the inproc pipe unbounded: libzmq sends monitor events with a blocking
    //  send from its I/O thread, which must never wait for the owner to read.
    int unlimited = 0;
    zmq_setsockopt(zsock_resolve(watch), ZMQ_RCVHWM, &unlimited, sizeof unlimited);
    //  A random name: one made of the sockets' addresses could still be bound by the monitor
    //  of an earlier socket at the same address, which libzmq releases asynchronously.
    uint8_t nonce[12];
    char nonce_hex[2 * sizeof nonce + 1], endpoint[96];
    if (sodium_init() < 0) {
        s_fail(err, errlen, "security: cannot initialise libsodium for the watch's name");
        zsock_destroy(&watch);
        return NULL;
    }
    randombytes_buf(nonce, sizeof nonce);
    sodium_bin2hex(nonce_hex, sizeof nonce_hex, nonce, sizeof nonce);
    snprintf(endpoint, sizeof endpoint, "inproc://hafl-security-watch-%s", nonce_hex);
    int events = ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                 ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                 ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED;
    if (zmq_socket_monitor(zsock_resolve(sock), endpoint, events) != 0) {
        s_fail(err, errlen, "security: cannot monitor the socket: %s", zmq_strerror(zmq_errno()));
        zsock_destroy(&watch);
        return NULL;
    }
    if (zmq_connect(zsock_resolve(watch), endpoint) != 0) {
        s_fail(err, errlen, "security: cannot connect the watch: %s", zmq_strerror(zmq_errno()));
        zmq_socket_monitor(zsock_resolve(sock), NULL, 0);
        zsock_destroy(&watch);
        return NULL;
    }
    return watch;
}

int hafl_security_connect(const hafl_security_t *self, zsock_t *sock, const char *endpoint,
                          zsock_t **watch_p, char *err, size_t errlen)
{
    *watch_p = NULL;
    if (hafl_security_apply_client(self, sock, endpoint, err, errlen))
        return -1;
    if (strncmp(endpoint, "inproc://", 9) != 0 &&
        !(*watch_p = hafl_security_watch(sock, err, errlen)))
        return -1;
    if (zsock_connect(sock, "%s", endpoint) != 0) {
        hafl_security_unwatch(sock, watch_p);
        return s_fail(err, errlen, "cannot connect to %s: %s", endpoint, zmq_strerror(zmq_errno()));
    }
    return 0;
}

static const char *s_protocol_reason(uint32_t code)
{
    switch (code) {
    case ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
        return "security mechanisms differ (one side does not use CURVE)";
    case ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC:
        return "cryptographic failure (the client does not hold the server's public key, or "
               "the handshake was tampered with)";
    case ZMQ_PROTOCOL_ERROR_ZMTP_UNEXPECTED_COMMAND:
    case ZMQ_PROTOCOL_ERROR_ZMTP_INVALID_SEQUENCE:
    case ZMQ_PROTOCOL_ERROR_ZMTP_KEY_EXCHANGE:
        return "the peer broke the handshake sequence";
    case ZMQ_PROTOCOL_ERROR_ZMTP_INVALID_METADATA:
        return "the peer sent invalid metadata";
    default:
        break;
    }
    if (code >= ZMQ_PROTOCOL_ERROR_ZMTP_MALFORMED_COMMAND_UNSPECIFIED &&
        code <= ZMQ_PROTOCOL_ERROR_ZMTP_MALFORMED_COMMAND_WELCOME)
        return "the peer sent a malformed handshake command";
    if ((code & 0xF0000000u) == ZMQ_PROTOCOL_ERROR_ZAP_UNSPECIFIED)
        return "the authenticator's reply was unusable";
    return "protocol error";
}

//  A monitor event is [event u16, value u32] [endpoint]. On a connecting socket the endpoint is
//  the server's; on a binding one it is its own (libzmq does not say which peer it was).
int hafl_security_watch_event(zsock_t *watch, hafl_watch_event_t *out)
{
    memset(out, 0, sizeof *out);
    zmsg_t *msg = zmsg_recv(watch);
    if (!msg)
        return -1;
    int rc = -1;
    zframe_t *head = zmsg_first(msg);
    zframe_t *addr = zmsg_next(msg);
    if (zmsg_size(msg) == 2 && zframe_size(head) == 6) {
        memcpy(&out->event, zframe_data(head), sizeof out->event);
        memcpy(&out->value, zframe_data(head) + 2, sizeof out->value);
        size_t alen = zframe_size(addr) < sizeof out->endpoint - 1 ? zframe_size(addr)
                                                                    : sizeof out->endpoint - 1;
        memcpy(out->endpoint, zframe_data(addr), alen);
        out->endpoint[alen] = 0;
        rc = 0;
    }
    zmsg_destroy(&msg);
    return rc;
}

int hafl_security_handshake(zsock_t *watch, bool connecting, char *why, size_t whylen)
{
    hafl_watch_event_t e;
    if (hafl_security_watch_event(watch, &e) != 0)
        return -1;
    return hafl_security_describe(&e, connecting, why, whylen);
}

int hafl_security_describe(const hafl_watch_event_t *e, bool connecting, char *why, size_t whylen)
{
    if (why && whylen)
        why[0] = 0;
    int rc = -1;
    {
        uint16_t event = e->event;
        uint32_t value = e->value;
        int alen = (int)strlen(e->endpoint);
        const char *a = e->endpoint;
        if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
            rc = HAFL_HANDSHAKE_OK;
        else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
            //  ZAP status 300 is a temporary failure; 400 a refusal, 500 a broken handler.
            rc = value == 300 ? HAFL_HANDSHAKE_LOST : HAFL_HANDSHAKE_REFUSED;
            const char *what = value == 400   ? "the client's public key is not in the allow-list"
                               : value == 300 ? "temporary failure"
                                              : "authenticator failure";
            if (connecting)
                snprintf(why, whylen,
                         "the server at %.*s refused the CURVE handshake: %s (ZAP status %u)", alen,
                         a,
                         value == 400 ? "this client's public key is not in its allow-list" : what,
                         value);
            else
                snprintf(why, whylen,
                         "CURVE handshake on %.*s refused by the authenticator: %s "
                         "(ZAP status %u)",
                         alen, a, what, value);
        } else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
            rc = HAFL_HANDSHAKE_REFUSED;
            if (connecting)
                snprintf(why, whylen, "the handshake with the server at %.*s failed: %s (0x%08x)",
                         alen, a, s_protocol_reason(value), value);
            else
                snprintf(why, whylen, "CURVE handshake on %.*s failed: %s (0x%08x)", alen, a,
                         s_protocol_reason(value), value);
        } else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) {
            rc = HAFL_HANDSHAKE_LOST;
            if (connecting)
                snprintf(why, whylen,
                         "the connection to the server at %.*s broke during the handshake "
                         "(errno %u: %s)",
                         alen, a, value, strerror((int)value));
            else
                snprintf(why, whylen,
                         "CURVE handshake on %.*s failed: connection lost before it "
                         "finished (errno %u)",
                         alen, a, value);
        } else
            rc = HAFL_HANDSHAKE_OTHER;
    }
    return rc;
}

int hafl_security_refusal(zsock_t *watch, char *why, size_t whylen)
{
    int rc = hafl_security_handshake(watch, false, why, whylen);
    if (rc < 0)
        return -1;
    return rc == HAFL_HANDSHAKE_REFUSED || rc == HAFL_HANDSHAKE_LOST ? 1 : 0;
}

int hafl_security_refused(const hafl_security_t *self, zsock_t *watch, uint32_t *lost, char *why,
                          size_t whylen)
{
    int rc = hafl_security_handshake(watch, true, why, whylen);
    if (rc < 0)
        return -1;
    if (rc == HAFL_HANDSHAKE_OK)
        *lost = 0;
    if (rc == HAFL_HANDSHAKE_REFUSED)
        return 1;
    if (rc != HAFL_HANDSHAKE_LOST || ++*lost < HAFL_SECURITY_MAX_LOST)
        return 0;
    //  Lost again and again: not a passing network fault. A server that cannot read our
    //  handshake drops the connection without a word, which is what this usually is.
    size_t used = strlen(why);
    snprintf(why + used, whylen - used, ", %u times in a row (%s)", *lost,
             hafl_security_enabled(self)
                 ? "what a CURVE server does when security/server_cert is not its certificate"
                 : "what a CURVE server does to a client without CURVE: security/curve differs");
    return 1;
}

void hafl_security_unwatch(zsock_t *sock, zsock_t **watch_p)
{
    if (sock && watch_p && *watch_p)
        zmq_socket_monitor(zsock_resolve(sock), NULL, 0);
    if (watch_p)
        zsock_destroy(watch_p);
}

hafl_security_t *hafl_security_new_peer(const hafl_topology_t *topology, int64_t index,
                                        char *err, size_t errlen)
{
    hafl_security_t *self = s_new(topology, err, errlen);
    if (!self || !self->curve)
        return self;
    const char *pattern = topology->security.client_cert ? topology->security.client_cert : "";
    const char *key = "security/client_cert";
    if (index == HAFL_BOUND_EVALUATOR && topology->security.evaluator_cert &&
        topology->security.evaluator_cert[0]) {
        pattern = topology->security.evaluator_cert;
        key = "security/evaluator_cert";
    }
    //  {index} replaced by the client's number (the evaluator has none: the loader requires
    //  security/evaluator_cert when client_cert holds the token).
    char path[PATH_MAX], number[24];
    snprintf(number, sizeof number, "%lld", (long long)index);
    const char *token = strstr(pattern, HAFL_SECURITY_INDEX_TOKEN);
    int rc = 0;
    if (token && index < 0)
        rc = s_fail(err, errlen, "%s: %s names one certificate per client; the evaluator needs "
                    "security/evaluator_cert", key, pattern);
    else if (token)
        snprintf(path, sizeof path, "%.*s%s%s", (int)(token - pattern), pattern, number,
                 token + strlen(HAFL_SECURITY_INDEX_TOKEN));
    else
        snprintf(path, sizeof path, "%s", pattern);
    if (rc == 0)
        rc = s_read_pair("security/server_cert", topology->security.server_cert, false,
                         &self->server, err, errlen);
    if (rc == 0)
        rc = s_read_pair(key, path, true, &self->client, err, errlen);
    if (rc)
        hafl_security_destroy(&self);
    return self;
}

bool hafl_security_place_bound(const hafl_security_t *self, int64_t place)
{
    for (size_t i = 0; hafl_security_enabled(self) && i < self->n_allowed; i++)
        if (self->allowed[i].bound == place)
            return true;
    return false;
}

int hafl_security_binding(const hafl_security_t *self, const char *public_key, int64_t *bound)
{
    *bound = HAFL_BOUND_NONE;
    if (!hafl_security_enabled(self) || !public_key)
        return -1;
    for (size_t i = 0; i < self->n_allowed; i++)
        if (strcmp(self->allowed[i].public_text, public_key) == 0) {
            *bound = self->allowed[i].bound;
            return 0;
        }
    return -1;
}
