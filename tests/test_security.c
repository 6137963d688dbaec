/*  test_security: CURVE on the bus (actors/hafl_security.h) with real certificates in a scratch
    folder. A server ROUTER armed with the server role on tcp://127.0.0.1 and a client DEALER
    whose certificate is in the allow-list exchange protocol HELLO messages both ways; a client
    whose certificate is not in the allow-list, a client without CURVE and a client holding the
    wrong server key get nothing through: the server's handshake watch reports each refusal
    with its reason (that event, not a timeout, is what the test waits for) while the allowed
    client keeps working, and every message the server receives is checked to come from it.
    Each refused client's own watch (hafl_security_connect, hafl_security_refused) makes it
    give up with a reason naming the server's endpoint, while the allowed client's reports a
    successful handshake and nothing else; a client that connects before any server listens
    hears nothing until a server binds and refuses it.
    Removing a file from the allow-list while the server runs refuses that key's next connection.
    Also: roles are no-ops when CURVE is off or the endpoint is inproc/ipc; serve is required
    before a server socket is armed and refuses a second authenticator in the process;
    malformed, mismatched, oversized and missing certificate files each fail
    hafl_security_new with a reason naming the key and file; and `hafl keygen` (when
    HAFL_BINARY is set) writes a layout the topology loader and hafl_security_new accept.
*/
#include "hafl_msg.h"
#include "hafl_security.h"
#include "hafl_test.h"
#include "hafl_topology.h"
#include "hafl_wire.h"

#include <czmq.h>
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

//  Poll deadline: a handshake on loopback takes milliseconds; this only bounds a broken run.
#define S_DEADLINE_MS 10000
//  Quiet period after the last exchange in which nothing more may reach the server.
#define S_QUIET_MS 300

typedef struct {
    char dir[PATH_MAX];
    char server[PATH_MAX];   //  server.cert (public; server.cert_secret beside it)
    char allow[PATH_MAX];    //  clients/ (alice only)
    char alice[PATH_MAX];    //  alice.cert_secret (allowed)
    char mallory[PATH_MAX];  //  mallory.cert_secret (not in the allow-list)
    char impostor[PATH_MAX]; //  impostor/server.cert: another server's public key
    char pubonly[PATH_MAX];  //  client-host/server.cert without its secret
} s_certs_t;

static void s_path(char *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, PATH_MAX, fmt, ap);
    va_end(ap);
    CHECK(n > 0 && n < PATH_MAX);
}

static void s_mkdir(const char *path)
{
    CHECKF(mkdir(path, 0755) == 0, "mkdir %s", path);
}

static void s_write_text(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    CHECKF(f, "cannot write %s", path);
    CHECK(fwrite(text, 1, len, f) == len);
    CHECK(fclose(f) == 0);
}

//  A new certificate: public side at pub (unless NULL), secret side at sec (unless NULL).
static zcert_t *s_cert(const char *pub, const char *sec)
{
    zcert_t *cert = zcert_new();
    CHECK(cert);
    if (pub)
        CHECK(zcert_save_public(cert, pub) == 0);
    if (sec)
        CHECK(zcert_save_secret(cert, sec) == 0);
    return cert;
}

static void s_make_certs(s_certs_t *c)
{
    const char *base = getenv("TMPDIR");
    s_path(c->dir, "%s/hafl-security-XXXXXX", base && *base ? base : P_tmpdir);
    CHECKF(mkdtemp(c->dir), "cannot create a scratch folder under %s", c->dir);
    char path[PATH_MAX];
    s_path(c->server, "%s/server.cert", c->dir);
    s_path(path, "%s/server.cert_secret", c->dir);
    zcert_t *server = s_cert(c->server, path);
    s_path(c->allow, "%s/clients", c->dir);
    s_mkdir(c->allow);
    s_path(path, "%s/alice.cert", c->allow);
    s_path(c->alice, "%s/alice.cert_secret", c->dir);
    zcert_t *alice = s_cert(path, c->alice);
    s_path(c->mallory, "%s/mallory.cert_secret", c->dir);
    zcert_t *mallory = s_cert(NULL, c->mallory);
    s_path(path, "%s/impostor", c->dir);
    s_mkdir(path);
    s_path(c->impostor, "%s/impostor/server.cert", c->dir);
    zcert_t *impostor = s_cert(c->impostor, NULL);
    s_path(path, "%s/client-host", c->dir);
    s_mkdir(path);
    s_path(c->pubonly, "%s/client-host/server.cert", c->dir);
    CHECK(zcert_save_public(server, c->pubonly) == 0);
    zcert_destroy(&server);
    zcert_destroy(&alice);
    zcert_destroy(&mallory);
    zcert_destroy(&impostor);
}

static hafl_topology_t s_topology(bool curve, const char *server, const char *allow,
                                  const char *client)
{
    hafl_topology_t t;
    memset(&t, 0, sizeof t);
    t.security.curve = curve;
    t.security.server_cert = (char *)server;
    t.security.client_certs = (char *)allow;
    t.security.client_cert = (char *)client;
    return t;
}

static hafl_security_t *s_security(const char *server, const char *allow, const char *client)
{
    hafl_topology_t t = s_topology(true, server, allow, client);
    char err[512] = "";
    hafl_security_t *self = hafl_security_new(&t, err, sizeof err);
    CHECKF(self, "hafl_security_new: %s", err);
    return self;
}

//  hafl_security_new must fail with a reason holding every one of the given words.
static void s_expect_new_error(const char *server, const char *allow, const char *client,
                               const char *word1, const char *word2)
{
    hafl_topology_t t = s_topology(true, server, allow, client);
    char err[512] = "";
    hafl_security_t *self = hafl_security_new(&t, err, sizeof err);
    CHECKF(!self, "accepted certificates that should fail with '%s'", word2);
    CHECKF(strstr(err, word1) && strstr(err, word2), "reason '%s' lacks '%s' or '%s'", err, word1,
           word2);
    CHECKF(!strchr(err, '\n'), "reason is not one line: %s", err);
    printf("refused as expected: %s\n", err);
}

static zsock_t *s_wait(zsock_t *a, zsock_t *b, int ms)
{
    zpoller_t *poller = zpoller_new(a, b, NULL);
    CHECK(poller);
    zsock_t *which = zpoller_wait(poller, ms);
    zpoller_destroy(&poller);
    return which;
}

static void s_send_hello(zsock_t *sock, zframe_t *identity, uint32_t index, const char *name)
{
    hafl_msg_t *msg = hafl_msg_new(HAFL_MSG_HELLO);
    CHECK(msg);
    msg->u.hello.client_index = index;
    snprintf(msg->u.hello.name, sizeof msg->u.hello.name, "%s", name);
    msg->u.hello.rank_budget = 4;
    msg->u.hello.n_samples = 1000 + index;
    for (int i = 0; i < 32; i++)
        msg->u.hello.base_digest[i] = (uint8_t)(i * 7 + index);
    hafl_msg_error_t err;
    CHECKF(hafl_wire_send(sock, identity, msg, NULL, &err) == 0, "send: %s", err.text);
    hafl_msg_destroy(&msg);
}

static void s_check_hello(const hafl_msg_t *msg, uint32_t index, const char *name)
{
    CHECK(msg->type == HAFL_MSG_HELLO);
    CHECK(msg->u.hello.client_index == index);
    CHECKF(strcmp(msg->u.hello.name, name) == 0, "name %s, expected %s", msg->u.hello.name, name);
    CHECK(msg->u.hello.rank_budget == 4);
    CHECK(msg->u.hello.n_samples == 1000 + index);
    for (int i = 0; i < 32; i++)
        CHECK(msg->u.hello.base_digest[i] == (uint8_t)(i * 7 + index));
}

//  Drains one event of a watch socket, printing refusals; returns 1 for a refusal.
static int s_read_watch(zsock_t *watch, char *why, size_t whylen, const char *who)
{
    int rc = hafl_security_refusal(watch, why, whylen);
    CHECKF(rc >= 0, "%s: unreadable watch event", who);
    if (rc == 1) {
        CHECKF(!strchr(why, '\n'), "refusal reason is not one line: %s", why);
        printf("%s watch: %s\n", who, why);
    }
    return rc;
}

//  The server receives one HELLO; it must come from identity `from` and carry (index, name).
//  Refusals reported meanwhile (a rogue client retrying) are printed and skipped. Returns the
//  sender's identity frame, which the caller owns.
static zframe_t *s_server_recv(zsock_t *router, zsock_t *watch, const char *from, uint32_t index,
                               const char *name)
{
    for (int events = 0; events < 1000; events++) {
        zsock_t *which = s_wait(router, watch, S_DEADLINE_MS);
        CHECKF(which, "no HELLO from %s within %d ms", from, S_DEADLINE_MS);
        if (which == watch) {
            char why[512];
            s_read_watch(watch, why, sizeof why, "server");
            continue;
        }
        zframe_t *identity = NULL;
        hafl_msg_t *msg = NULL;
        size_t bytes = 0;
        hafl_msg_error_t err;
        hafl_wire_status_t st = hafl_wire_recv(router, true, NULL, &identity, &msg, NULL, &bytes, &err);
        CHECKF(st == HAFL_WIRE_OK, "server recv: status %d %s", (int)st, err.text);
        CHECKF(identity && zframe_streq(identity, from), "a message from %s got through",
               identity ? zframe_strhex(identity) : "?");
        s_check_hello(msg, index, name);
        hafl_msg_destroy(&msg);
        return identity;
    }
    CHECKF(false, "too many watch events while waiting for %s", from);
    return NULL;
}

static void s_client_recv(zsock_t *dealer, uint32_t index, const char *name)
{
    CHECKF(s_wait(dealer, NULL, S_DEADLINE_MS) == dealer, "client: no reply within %d ms",
           S_DEADLINE_MS);
    hafl_msg_t *msg = NULL;
    size_t bytes = 0;
    hafl_msg_error_t err;
    CHECK(hafl_wire_recv(dealer, false, NULL, NULL, &msg, NULL, &bytes, &err) == HAFL_WIRE_OK);
    s_check_hello(msg, index, name);
    hafl_msg_destroy(&msg);
}

//  Waits until the server's watch reports a refusal containing keyword; a message reaching
//  the server meanwhile fails the test.
static void s_expect_refusal(zsock_t *router, zsock_t *watch, const char *keyword)
{
    for (int events = 0; events < 1000; events++) {
        zsock_t *which = s_wait(router, watch, S_DEADLINE_MS);
        CHECKF(which, "no refusal with '%s' within %d ms", keyword, S_DEADLINE_MS);
        CHECKF(which == watch, "a message reached the server while a refusal ('%s') was due",
               keyword);
        char why[512];
        if (s_read_watch(watch, why, sizeof why, "server") == 1 && strstr(why, keyword))
            return;
    }
    CHECKF(false, "too many watch events before a refusal with '%s'", keyword);
}

//  A client DEALER connected as the actors connect (hafl_security_connect); *watch_p gets its
//  handshake watch.
static zsock_t *s_dealer(const char *identity, const hafl_security_t *security,
                         const char *endpoint, zsock_t **watch_p)
{
    zsock_t *dealer = zsock_new(ZMQ_DEALER);
    CHECK(dealer);
    zsock_set_identity(dealer, identity);
    char err[512] = "";
    CHECKF(hafl_security_connect(security, dealer, endpoint, watch_p, err, sizeof err) == 0,
           "connect: %s", err);
    CHECK(*watch_p != NULL);
    return dealer;
}

//  The client's own verdict (hafl_security_refused) must be to give up, with a one-line reason
//  naming the server's endpoint and holding one of the two keywords.
static void s_expect_given_up(const hafl_security_t *security, zsock_t *watch, const char *who,
                              const char *endpoint, const char *keyword, const char *or_keyword)
{
    uint32_t lost = 0;
    char why[512];
    for (int events = 0; events < 1000; events++) {
        CHECKF(s_wait(watch, NULL, S_DEADLINE_MS) == watch, "%s: its watch said nothing", who);
        int rc = hafl_security_refused(security, watch, &lost, why, sizeof why);
        CHECKF(rc >= 0, "%s: unreadable watch event", who);
        if (rc == 0)
            continue;
        CHECKF(!strchr(why, '\n'), "reason is not one line: %s", why);
        CHECKF(strstr(why, endpoint), "%s: reason '%s' does not name %s", who, why, endpoint);
        CHECKF(strstr(why, keyword) || strstr(why, or_keyword), "%s: reason '%s' lacks '%s'", who,
               why, keyword);
        printf("%s gives up: %s\n", who, why);
        return;
    }
    CHECKF(false, "%s: too many watch events before giving up", who);
}

//  Roles do nothing when CURVE is off or the endpoint stays on the host.
static void s_test_noops(const hafl_security_t *on)
{
    hafl_topology_t t = s_topology(false, "", "", "");
    char err[512] = "";
    hafl_security_t *off = hafl_security_new(&t, err, sizeof err);
    CHECKF(off, "off: %s", err);
    CHECK(!hafl_security_enabled(off) && !hafl_security_enabled(NULL));
    CHECK(hafl_security_serve(off, false, err, sizeof err) == 0);
    CHECK(hafl_security_allowed(off) == 0 && strcmp(hafl_security_server_key(off), "") == 0);
    CHECK(hafl_security_enabled(on));
    CHECK(!hafl_security_covers(on, "inproc://bus") && !hafl_security_covers(on, "ipc://@x"));
    CHECK(hafl_security_covers(on, "tcp://127.0.0.1:5670") && hafl_security_covers(on, "ws://x"));
    CHECK(!hafl_security_covers(off, "tcp://127.0.0.1:5670"));
    const hafl_security_t *cases[] = {off, NULL, on};
    const char *endpoints[] = {"tcp://127.0.0.1:5670", "tcp://127.0.0.1:5670", "inproc://x"};
    for (int i = 0; i < 3; i++) {
        zsock_t *s = zsock_new(ZMQ_ROUTER);
        CHECK(hafl_security_apply_server(cases[i], s, endpoints[i], err, sizeof err) == 0);
        CHECK(hafl_security_apply_client(cases[i], s, endpoints[i], err, sizeof err) == 0);
        CHECK(zsock_mechanism(s) == ZMQ_NULL);
        zsock_destroy(&s);
    }
    hafl_security_destroy(&off);
    hafl_security_destroy(&off);
}

//  Every way a certificate setup can be wrong gives a one-line reason naming key and file.
static void s_test_bad_files(const s_certs_t *c)
{
    char path[PATH_MAX], sibling[PATH_MAX];
    const char *S = c->server, *A = c->allow, *C = c->alice;

    s_path(path, "%s/nope.cert", c->dir);
    s_expect_new_error(path, A, C, "security/server_cert", "nope.cert");
    s_expect_new_error(S, A, path, "security/client_cert", "No such file");
    s_expect_new_error("", A, C, "security/server_cert", "missing");
    s_expect_new_error(S, A, NULL, "security/client_cert", "missing");
    s_path(path, "%s/missing-dir", c->dir);
    s_expect_new_error(S, path, C, "security/client_certs", "missing-dir");
    s_expect_new_error(c->dir, A, C, "security/server_cert", "not a regular file");

    s_path(path, "%s/empty.cert", c->dir);
    s_write_text(path, "", 0);
    s_expect_new_error(path, A, C, "empty.cert", "no curve/public-key");
    s_path(path, "%s/short.cert", c->dir);
    const char *shortkey = "curve\n    public-key = \"abcde\"\n";
    s_write_text(path, shortkey, strlen(shortkey));
    s_expect_new_error(path, A, C, "short.cert", "has 5 characters");
    s_path(path, "%s/badz85.cert", c->dir);
    const char *badz85 = "curve\n    public-key = \"~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~\"\n";
    s_write_text(path, badz85, strlen(badz85));
    s_expect_new_error(path, A, C, "badz85.cert", "not valid Z85");
    s_path(path, "%s/binary.cert", c->dir);
    char binary[512];
    for (size_t i = 0; i < sizeof binary; i++)
        binary[i] = (char)((i * 131 + 7) & 0xFF);
    s_write_text(path, binary, sizeof binary);
    s_expect_new_error(path, A, C, "binary.cert", "not a text certificate");
    s_path(path, "%s/huge.cert", c->dir);
    size_t huge = HAFL_SECURITY_MAX_CERT_BYTES + 1;
    char *big = malloc(huge);
    CHECK(big);
    memset(big, '#', huge);
    s_write_text(path, big, huge);
    free(big);
    s_expect_new_error(S, A, path, "huge.cert", "more than a certificate may hold");

    //  A secret key that does not derive the file's public key.
    zcert_t *x = zcert_new(), *y = zcert_new();
    CHECK(x && y);
    char text[512];
    snprintf(text, sizeof text, "curve\n    public-key = \"%s\"\n    secret-key = \"%s\"\n",
             zcert_public_txt(x), zcert_secret_txt(y));
    s_path(path, "%s/mixed.cert_secret", c->dir);
    s_write_text(path, text, strlen(text));
    s_expect_new_error(S, A, path, "mixed.cert_secret", "does not belong");
    //  FILE_secret beside FILE but of another certificate.
    s_path(path, "%s/pair.cert", c->dir);
    s_path(sibling, "%s/pair.cert_secret", c->dir);
    CHECK(zcert_save_public(x, path) == 0 && zcert_save_secret(y, sibling) == 0);
    s_expect_new_error(path, A, C, "pair.cert_secret", "public keys differ");
    //  A client certificate without its secret anywhere.
    s_path(path, "%s/public-only.cert", c->dir);
    CHECK(zcert_save_public(x, path) == 0);
    s_expect_new_error(S, A, path, "security/client_cert", "holds no secret key");

    //  Allow-lists: a malformed file is named; a secret key does not belong there.
    s_path(path, "%s/bad-allow", c->dir);
    s_mkdir(path);
    s_path(sibling, "%s/bad-allow/ok.cert", c->dir);
    CHECK(zcert_save_public(x, sibling) == 0);
    s_path(sibling, "%s/bad-allow/broken.cert", c->dir);
    s_write_text(sibling, shortkey, strlen(shortkey));
    s_expect_new_error(S, path, C, "security/client_certs", "broken.cert");
    s_path(path, "%s/secret-allow", c->dir);
    s_mkdir(path);
    s_path(sibling, "%s/secret-allow/y.cert_secret", c->dir);
    CHECK(zcert_save_secret(y, sibling) == 0);
    s_expect_new_error(S, path, C, "y.cert_secret", "holds a secret key");
    zcert_destroy(&x);
    zcert_destroy(&y);

    //  Loads, but cannot serve: a client host's public-only server certificate; an empty
    //  allow-list (hidden files and subdirectories do not count).
    char err[512] = "";
    hafl_security_t *client_host = s_security(c->pubonly, A, C);
    CHECK(hafl_security_serve(client_host, false, err, sizeof err) == -1);
    CHECKF(strstr(err, "no secret key"), "%s", err);
    printf("refused as expected: %s\n", err);
    hafl_security_destroy(&client_host);
    s_path(path, "%s/empty-allow", c->dir);
    s_mkdir(path);
    s_path(sibling, "%s/empty-allow/.hidden", c->dir);
    s_write_text(sibling, "junk", 4);
    s_path(sibling, "%s/empty-allow/sub", c->dir);
    s_mkdir(sibling);
    hafl_security_t *empty = s_security(S, path, C);
    CHECK(hafl_security_allowed(empty) == 0);
    CHECK(hafl_security_serve(empty, false, err, sizeof err) == -1);
    CHECKF(strstr(err, "holds no certificate"), "%s", err);
    printf("refused as expected: %s\n", err);
    hafl_security_destroy(&empty);
}

//  A client (security NULL: no CURVE) sends HELLO `index`; the server must report a refusal
//  containing keyword, the client must give up with a reason holding mine or or_mine, and
//  alice's next HELLO (index + 1) must still get through.
static void s_rogue_refused(zsock_t *router, zsock_t *watch, const char *endpoint,
                            const hafl_security_t *security, const char *identity,
                            const char *keyword, const char *mine, const char *or_mine,
                            zsock_t *alice, uint32_t index)
{
    zsock_t *rogue_watch = NULL;
    zsock_t *rogue = s_dealer(identity, security, endpoint, &rogue_watch);
    s_send_hello(rogue, NULL, index, identity);
    s_expect_refusal(router, watch, keyword);
    s_expect_given_up(security, rogue_watch, identity, endpoint, mine, or_mine);
    hafl_security_unwatch(rogue, &rogue_watch);
    s_send_hello(alice, NULL, index + 1, "alice");
    zframe_t *id = s_server_recv(router, watch, "alice", index + 1, "alice");
    zframe_destroy(&id);
    zsock_destroy(&rogue);
}

//  A server that is not up yet is no refusal: a client connecting to a port where nothing
//  listens hears nothing from its watch; once a CURVE server binds there and refuses it, it
//  gives up. (Needs the authenticator of the caller running.)
static void s_test_not_up_yet(const hafl_security_t *server, const hafl_security_t *mallory_host)
{
    //  Hold a free port without listening: connections to it are refused, and closing it
    //  frees the port at once for the server.
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    CHECK(bind(fd, (struct sockaddr *)&addr, len) == 0);
    CHECK(getsockname(fd, (struct sockaddr *)&addr, &len) == 0);
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", ntohs(addr.sin_port));
    zsock_t *watch = NULL;
    zsock_t *mallory = s_dealer("early", mallory_host, endpoint, &watch);
    s_send_hello(mallory, NULL, 12, "early");
    CHECKF(s_wait(watch, NULL, S_QUIET_MS) == NULL,
           "a handshake event while no server listens at %s", endpoint);
    CHECK(close(fd) == 0);
    zsock_t *router = zsock_new(ZMQ_ROUTER);
    CHECK(router);
    char err[512] = "";
    CHECKF(hafl_security_apply_server(server, router, endpoint, err, sizeof err) == 0, "%s", err);
    CHECKF(zsock_bind(router, "%s", endpoint) >= 0, "bind %s: %s", endpoint,
           zmq_strerror(zmq_errno()));
    s_expect_given_up(mallory_host, watch, "early", endpoint, "not in its allow-list",
                      "not in its allow-list");
    hafl_security_unwatch(mallory, &watch);
    zsock_destroy(&mallory);
    zsock_destroy(&router);
}

//  The live exchange: allowed client both ways; rogue, plain and impostor clients refused.
static void s_test_exchange(const s_certs_t *c)
{
    char err[512] = "";
    hafl_security_t *server = s_security(c->server, c->allow, c->alice);
    CHECK(hafl_security_allowed(server) == 1);
    zsock_t *router = zsock_new(ZMQ_ROUTER);
    CHECK(router);
    const char *any = "tcp://127.0.0.1:*";
    //  Arming a server socket before the authenticator runs would admit any CURVE client.
    CHECK(hafl_security_apply_server(server, router, any, err, sizeof err) == -1);
    CHECKF(strstr(err, "hafl_security_serve"), "%s", err);
    CHECK(hafl_security_serve(server, false, err, sizeof err) == 0);
    CHECK(hafl_security_serve(server, false, err, sizeof err) == 0); //  idempotent
    hafl_security_t *second = s_security(c->server, c->allow, c->alice);
    CHECK(hafl_security_serve(second, false, err, sizeof err) == -1);
    CHECKF(strstr(err, "another ZAP handler"), "%s", err);
    printf("refused as expected: %s\n", err);
    hafl_security_destroy(&second);

    zsock_t *watch = hafl_security_watch(router, err, sizeof err);
    CHECKF(watch, "watch: %s", err);
    CHECKF(hafl_security_apply_server(server, router, any, err, sizeof err) == 0, "%s", err);
    CHECK(zsock_mechanism(router) == ZMQ_CURVE && zsock_curve_server(router) == 1);
    int port = zsock_bind(router, "%s", any);
    CHECK(port > 0);
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);

    //  Alice, on a client host that holds only the server's public certificate.
    hafl_security_t *alice_host = s_security(c->pubonly, c->allow, c->alice);
    CHECK(strcmp(hafl_security_server_key(alice_host), hafl_security_server_key(server)) == 0);
    zsock_t *alice_watch = NULL;
    zsock_t *alice = s_dealer("alice", alice_host, endpoint, &alice_watch);
    CHECK(zsock_mechanism(alice) == ZMQ_CURVE);
    s_send_hello(alice, NULL, 3, "alice");
    zframe_t *alice_id = s_server_recv(router, watch, "alice", 3, "alice");
    //  Her own watch saw the handshake succeed.
    char why[512];
    CHECKF(s_wait(alice_watch, NULL, S_DEADLINE_MS) == alice_watch, "alice's watch is silent");
    CHECK(hafl_security_handshake(alice_watch, true, why, sizeof why) == HAFL_HANDSHAKE_OK);
    s_send_hello(router, alice_id, 99, "server");
    s_client_recv(alice, 99, "server");

    //  Mallory: valid CURVE certificate, right server key, not in the allow-list. Her own
    //  watch tells her why.
    hafl_security_t *mallory_host = s_security(c->pubonly, c->allow, c->mallory);
    zsock_t *mallory_watch = NULL;
    zsock_t *mallory = s_dealer("mallory", mallory_host, endpoint, &mallory_watch);
    s_send_hello(mallory, NULL, 4, "mallory");
    s_expect_refusal(router, watch, "not in the allow-list");
    s_expect_given_up(mallory_host, mallory_watch, "mallory", endpoint,
                      "refused the CURVE handshake: this client's public key is not in its "
                      "allow-list (ZAP status 400)",
                      "(ZAP status 400)");
    //  The allowed client is unaffected.
    s_send_hello(alice, NULL, 5, "alice");
    zframe_destroy(&alice_id);
    alice_id = s_server_recv(router, watch, "alice", 5, "alice");
    hafl_security_unwatch(mallory, &mallory_watch);
    CHECK(mallory_watch == NULL);
    zsock_destroy(&mallory);

    //  A client without CURVE.
    //  (libzmq tells it the mechanisms differ, or drops it before the handshake ends.)
    s_rogue_refused(router, watch, endpoint, NULL, "plain", "mechanisms differ",
                    "mechanisms differ", "security/curve differs", alice, 6);
    //  Alice's certificate but another server's public key: the server cannot read her, and
    //  drops her without a word, handshake after handshake.
    hafl_security_t *fooled_host = s_security(c->impostor, c->allow, c->alice);
    s_rogue_refused(router, watch, endpoint, fooled_host, "fooled", "cryptographic",
                    "times in a row (what a CURVE server does when security/server_cert",
                    "cryptographic", alice, 8);
    s_send_hello(router, alice_id, 100, "server");
    s_client_recv(alice, 100, "server");

    //  Revocation while serving: once alice's file leaves the allow-list (hidden files do not
    //  count), a new connection with her certificate is refused; the open one stays up.
    char listed[PATH_MAX], hidden[PATH_MAX];
    s_path(listed, "%s/alice.cert", c->allow);
    s_path(hidden, "%s/.alice.cert", c->allow);
    CHECK(rename(listed, hidden) == 0);
    s_rogue_refused(router, watch, endpoint, alice_host, "revoked", "not in the allow-list",
                    "not in its allow-list", "not in its allow-list", alice, 10);
    CHECK(rename(hidden, listed) == 0);

    //  Quiet period: nothing else reaches the server (refusals of late retries may still come).
    zsock_t *which;
    while ((which = s_wait(router, watch, S_QUIET_MS)) != NULL) {
        CHECKF(which == watch, "an unexpected message reached the server");
        s_read_watch(watch, why, sizeof why, "server");
    }
    //  Alice's connection never failed: her watch holds no refusal.
    uint32_t lost = 0;
    while (s_wait(alice_watch, NULL, 0) == alice_watch)
        CHECKF(hafl_security_refused(alice_host, alice_watch, &lost, why, sizeof why) == 0,
               "alice would give up: %s", why);
    zframe_destroy(&alice_id);
    hafl_security_unwatch(alice, &alice_watch);
    zsock_destroy(&alice);
    hafl_security_unwatch(router, &watch);
    zsock_destroy(&router);
    s_test_not_up_yet(server, mallory_host);
    hafl_security_destroy(&fooled_host);
    hafl_security_destroy(&mallory_host);
    hafl_security_destroy(&alice_host);
    s_test_noops(server);
    hafl_security_destroy(&server);
}

static int s_run(const char *command)
{
    int status = system(command);
    CHECKF(status != -1 && WIFEXITED(status), "cannot run: %s", command);
    return WEXITSTATUS(status);
}

//  `hafl keygen` end to end: exit codes, and a layout that the topology loader and
//  hafl_security_new accept as printed.
static void s_test_keygen(const s_certs_t *c)
{
    const char *hafl = getenv("HAFL_BINARY");
    if (!hafl || !*hafl || access(hafl, X_OK) != 0) {
        printf("HAFL_BINARY not set: skipping the hafl keygen checks\n");
        return;
    }
    char cmd[3 * PATH_MAX], zpl[PATH_MAX];
    s_path(zpl, "%s/secured.zpl", c->dir);
    FILE *f = fopen(zpl, "w");
    CHECK(f);
    fprintf(f, "model\n    kind = synthetic\ndata\n    dataset = synthetic\n"
               "placement\n    mode = processes\n    transport = tcp\n");
    CHECK(fclose(f) == 0);
    snprintf(cmd, sizeof cmd, "'%s' keygen '%s/kg/' --name ann --name bob >> '%s'", hafl, c->dir,
             zpl);
    CHECK(s_run(cmd) == 0);
    hafl_topology_error_t terr;
    hafl_topology_t *t = hafl_topology_load(zpl, NULL, 0, &terr);
    CHECKF(t, "keygen's section does not load: %s", terr.text);
    CHECK(t->security.curve);
    char err[512] = "";
    hafl_security_t *s = hafl_security_new(t, err, sizeof err);
    CHECKF(s, "%s", err);
    CHECK(hafl_security_allowed(s) == 2);
    CHECK(strstr(t->security.client_cert, "ann.cert_secret"));
    hafl_security_destroy(&s);
    hafl_topology_destroy(&t);
    char path[PATH_MAX];
    struct stat st;
    s_path(path, "%s/kg/bob.cert_secret", c->dir);
    CHECK(stat(path, &st) == 0 && (st.st_mode & 077) == 0);

    snprintf(cmd, sizeof cmd, "'%s' keygen '%s/kg' --name bob >/dev/null 2>&1", hafl, c->dir);
    CHECK(s_run(cmd) == 1); //  exists
    snprintf(cmd, sizeof cmd, "'%s' keygen '%s/kg' --name cy >/dev/null", hafl, c->dir);
    CHECK(s_run(cmd) == 0); //  adds a client, keeps the server pair
    snprintf(cmd, sizeof cmd, "'%s' keygen '%s/kg' --name server >/dev/null 2>&1", hafl, c->dir);
    CHECK(s_run(cmd) == 2);
    snprintf(cmd, sizeof cmd, "'%s' keygen >/dev/null 2>&1", hafl);
    CHECK(s_run(cmd) == 2);
    //  --clients: a count from 1 to 100000, and not mixed with --name.
    const char *bad_clients[] = {"--clients 0", "--clients 100001", "--clients x", "--clients",
                                 "--clients 2 --name dan"};
    for (size_t i = 0; i < sizeof bad_clients / sizeof bad_clients[0]; i++) {
        snprintf(cmd, sizeof cmd, "'%s' keygen '%s/kgb' %s >/dev/null 2>&1", hafl, c->dir,
                 bad_clients[i]);
        CHECKF(s_run(cmd) == 2, "keygen %s was not a usage error", bad_clients[i]);
    }
    s_path(path, "%s/kgb", c->dir);
    CHECKF(stat(path, &st) != 0, "a refused keygen --clients wrote %s", path);
    snprintf(cmd, sizeof cmd, "'%s' keygen --help >/dev/null", hafl);
    CHECK(s_run(cmd) == 0);
    s_path(path, "%s/kg/server.cert", c->dir);
    hafl_topology_t kt = s_topology(true, path, "", "");
    char allow[PATH_MAX], client[PATH_MAX];
    s_path(allow, "%s/kg/clients", c->dir);
    s_path(client, "%s/kg/cy.cert_secret", c->dir);
    kt.security.client_certs = allow;
    kt.security.client_cert = client;
    s = hafl_security_new(&kt, err, sizeof err);
    CHECKF(s, "%s", err);
    CHECK(hafl_security_allowed(s) == 3);
    hafl_security_destroy(&s);
}

int main(void)
{
    s_certs_t certs;
    s_make_certs(&certs);
    s_test_bad_files(&certs);
    s_test_exchange(&certs);
    s_test_keygen(&certs);
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", certs.dir);
    CHECK(system(cmd) == 0);
    printf("security: ok\n");
    return 0;
}
