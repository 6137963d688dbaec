/*  hafl keygen DIR [--name NAME]... | [--clients N] [--force]: CURVE certificates for a secured
    federation, in the layout the topology's security section expects (actors/hafl_security.h):

        DIR/server.cert            the server's public certificate (every host)
        DIR/server.cert_secret     the server's secret certificate (server host only)
        DIR/clients/NAME.cert      each client's public certificate: the allow-list
        DIR/NAME.cert_secret       each client's secret certificate (that client's host only)

    With --clients N every client gets its own pair, client-K, bound to its index by the
    certificate's metadata (index = K), plus one for the evaluator (role = evaluator): the
    server then lets each key take only its own place. The printed section uses
    client_cert = DIR/client-{index}.cert_secret and evaluator_cert = DIR/evaluator.cert_secret.
    Files are zcert (ZPL) certificates written atomically (temp file, fsync, rename); secret
    files are mode 0600. An existing server pair is kept, so clients can be added later; any
    other existing file stops the command unless --force, which regenerates everything named.
    The result is read back with hafl_security_new before the topology lines are printed.
    stdout is a ZPL fragment (comments and the security section) to paste into a topology.
    Exit codes: 0 written, 1 a file exists or cannot be written, 2 bad usage.
*/
#include "hafl_cmd.h"
#include "hafl_security.h"
#include "hafl_topology.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_MAX_NAME 64

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: hafl keygen DIR [--name NAME]... | [--clients N] [--force]\n\n"
            "Creates CURVE certificates for a topology with security/curve = true:\n"
            "  DIR/server.cert, DIR/server.cert_secret   the server's (secret: server host only)\n"
            "  DIR/clients/NAME.cert                     the allow-list of client public keys\n"
            "  DIR/NAME.cert_secret                      each client's secret certificate\n"
            "and prints the topology's security section (a ZPL fragment) on stdout.\n\n"
            "  --clients N   one certificate per client, client-0 .. client-(N-1), each bound to\n"
            "                its index, and one bound to the evaluator: the server lets every\n"
            "                key take only its own place (the secure choice; 1..100000)\n"
            "  --name NAME   a client certificate (repeatable; default one named 'client');\n"
            "                NAME is 1..%d of A-Z a-z 0-9 . _ - not starting with '.', not "
            "'server'\n"
            "  --force       overwrite existing files (including the server's pair)\n"
            "  --help        this text\n\n"
            "An existing server pair is kept, so running it again with new names adds clients.\n"
            "All clients of one topology share security/client_cert; give each host its own\n"
            "with --set security/client_cert=DIR/NAME.cert_secret.\n\n"
            "exit codes: 0 written, 1 a file exists or cannot be written, 2 bad usage\n",
            S_MAX_NAME);
}

//  snprintf into a PATH_MAX buffer; the callers checked DIR's length, so names always fit.
static void s_path(char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(path, PATH_MAX, fmt, ap);
    va_end(ap);
}

static bool s_valid_name(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > S_MAX_NAME || name[0] == '.' || strcmp(name, "server") == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static bool s_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static int s_mkdir(const char *path)
{
    if (mkdir(path, 0755) == 0)
        return chmod(path, 0755);
    struct stat st;
    if (errno == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return 0;
    if (errno == EEXIST)
        errno = ENOTDIR;
    return -1;
}

static int s_fsync_path(const char *path, int flags)
{
    int fd = open(path, flags);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

//  Writes one side of cert to dir/base through dir/.base.tmp (mode 0600 secret, 0644 public).
static int s_write(zcert_t *cert, bool secret, const char *dir, const char *base)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, base) >= sizeof path ||
        (size_t)snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, base) >= sizeof tmp) {
        fprintf(stderr, "hafl keygen: %s/%s: path too long\n", dir, base);
        return -1;
    }
    unlink(tmp);
    errno = 0;
    //  umask 077 is in force, so the file never exists with wider permissions than 0600.
    int rc = secret ? zcert_save_secret(cert, tmp) : zcert_save_public(cert, tmp);
    if (rc == 0 && !secret)
        rc = chmod(tmp, 0644);
    if (rc == 0)
        rc = s_fsync_path(tmp, O_RDONLY);
    if (rc == 0)
        rc = rename(tmp, path);
    if (rc == 0)
        rc = s_fsync_path(dir, O_RDONLY | O_DIRECTORY);
    if (rc != 0) {
        fprintf(stderr, "hafl keygen: cannot write %s: %s\n", path,
                errno ? strerror(errno) : "zcert save failed");
        unlink(tmp);
        return -1;
    }
    return 0;
}

//  A new certificate with name and role metadata, and the client index it is bound to
//  (index >= 0; HAFL_BOUND_EVALUATOR makes role "evaluator"; HAFL_BOUND_NONE binds nothing).
static zcert_t *s_cert(const char *name, const char *role, int64_t index)
{
    zcert_t *cert = zcert_new();
    if (cert) {
        zcert_set_meta(cert, "name", "%s", name);
        zcert_set_meta(cert, "role", "%s",
                       index == HAFL_BOUND_EVALUATOR  ? "evaluator"
                       : index == HAFL_BOUND_OPERATOR ? "operator"
                                                      : role);
        if (index >= 0)
            zcert_set_meta(cert, "index", "%lld", (long long)index);
        zcert_set_meta(cert, "created-by", "hafl keygen");
    }
    return cert;
}

//  Refuses (prints, returns 1) when path exists and overwriting is not allowed.
static int s_check_free(const char *path, bool force)
{
    if (force || !s_exists(path))
        return 0;
    fprintf(stderr, "hafl keygen: %s exists (use --force to overwrite)\n", path);
    return 1;
}

static int s_generate(const char *dir, const char **names, const int64_t *bound, size_t n_names,
                      bool force)
{
    char clients[PATH_MAX], server_pub[PATH_MAX], server_sec[PATH_MAX], path[PATH_MAX];
    if ((size_t)snprintf(clients, sizeof clients, "%s/clients", dir) >= sizeof clients ||
        (size_t)snprintf(server_pub, sizeof server_pub, "%s/server.cert", dir) >=
            sizeof server_pub ||
        (size_t)snprintf(server_sec, sizeof server_sec, "%s/server.cert_secret", dir) >=
            sizeof server_sec ||
        strlen(dir) + S_MAX_NAME + 32 >= PATH_MAX) {
        fprintf(stderr, "hafl keygen: %s: path too long\n", dir);
        return HAFL_EXIT_USAGE;
    }
    //  Every check before the first write, so a refused run changes nothing.
    bool have_pub = s_exists(server_pub), have_sec = s_exists(server_sec);
    bool keep_server = !force && have_pub && have_sec;
    if (!force && have_pub != have_sec) {
        fprintf(stderr, "hafl keygen: %s exists without %s (use --force to regenerate both)\n",
                have_pub ? server_pub : server_sec, have_pub ? server_sec : server_pub);
        return HAFL_EXIT_FAILURE;
    }
    int bad = 0;
    for (size_t i = 0; i < n_names; i++) {
        s_path(path, "%s/%s.cert", clients, names[i]);
        bad |= s_check_free(path, force);
        s_path(path, "%s/%s.cert_secret", dir, names[i]);
        bad |= s_check_free(path, force);
    }
    if (bad)
        return HAFL_EXIT_FAILURE;
    if (s_mkdir(dir) || s_mkdir(clients)) {
        fprintf(stderr, "hafl keygen: cannot create %s: %s\n", s_exists(dir) ? clients : dir,
                strerror(errno));
        return HAFL_EXIT_FAILURE;
    }
    if (!keep_server) {
        zcert_t *cert = s_cert("server", "server", HAFL_BOUND_NONE);
        int rc = cert ? 0 : -1;
        if (rc == 0)
            rc = s_write(cert, true, dir, "server.cert_secret");
        if (rc == 0)
            rc = s_write(cert, false, dir, "server.cert");
        zcert_destroy(&cert);
        if (rc)
            return HAFL_EXIT_FAILURE;
        printf("# wrote %s (every host) and %s (server host only)\n", server_pub, server_sec);
    } else
        printf("# kept the existing server pair %s, %s\n", server_pub, server_sec);
    for (size_t i = 0; i < n_names; i++) {
        char secret_base[S_MAX_NAME + 16], public_base[S_MAX_NAME + 16];
        snprintf(secret_base, sizeof secret_base, "%s.cert_secret", names[i]);
        snprintf(public_base, sizeof public_base, "%s.cert", names[i]);
        zcert_t *cert = s_cert(names[i], "client", bound[i]);
        int rc = cert ? 0 : -1;
        if (rc == 0)
            rc = s_write(cert, true, dir, secret_base);
        if (rc == 0)
            rc = s_write(cert, false, clients, public_base);
        zcert_destroy(&cert);
        if (rc)
            return HAFL_EXIT_FAILURE;
        printf("# wrote %s/%s (allow-list) and %s/%s (host of %s only)\n", clients, public_base,
               dir, secret_base, names[i]);
    }

    //  Read the result back exactly as a federation will.
    char client_sec[PATH_MAX];
    s_path(client_sec, "%s/%s.cert_secret", dir, names[0]);
    hafl_topology_t topology;
    memset(&topology, 0, sizeof topology);
    topology.security.curve = true;
    topology.security.server_cert = server_pub;
    topology.security.client_certs = clients;
    topology.security.client_cert = client_sec;
    char err[512];
    hafl_security_t *check = hafl_security_new(&topology, err, sizeof err);
    if (!check) {
        fprintf(stderr, "hafl keygen: the certificates do not check: %s\n", err);
        return HAFL_EXIT_FAILURE;
    }
    printf("# %zu client certificate(s) in the allow-list; server key %s\n",
           hafl_security_allowed(check), hafl_security_server_key(check));
    hafl_security_destroy(&check);
    if (bound[0] >= 0) {
        printf("# every client's host needs only its own client-K.cert_secret; the evaluator's\n"
               "# host evaluator.cert_secret; `hafl ctl ... --cert %s/operator.cert_secret\n"
               "# --server-cert %s` is the only key the control socket obeys\n"
               "security\n"
               "    curve = true\n"
               "    server_cert = \"%s\"\n"
               "    client_certs = \"%s\"\n"
               "    client_cert = \"%s/client-" HAFL_SECURITY_INDEX_TOKEN ".cert_secret\"\n"
               "    evaluator_cert = \"%s/evaluator.cert_secret\"\n",
               dir, server_pub, server_pub, clients, dir, dir);
        return HAFL_EXIT_OK;
    }
    printf("security\n"
           "    curve = true\n"
           "    server_cert = \"%s\"\n"
           "    client_certs = \"%s\"\n"
           "    client_cert = \"%s\"\n",
           server_pub, clients, client_sec);
    for (size_t i = 1; i < n_names; i++)
        printf("# on %s's host: --set security/client_cert=%s/%s.cert_secret\n", names[i], dir,
               names[i]);
    return HAFL_EXIT_OK;
}

int hafl_cmd_keygen(int argc, char **argv)
{
    const char *dir = NULL;
    bool force = false;
    const char **names = calloc((size_t)argc + 1, sizeof *names);
    if (!names) {
        fprintf(stderr, "hafl keygen: out of memory\n");
        return HAFL_EXIT_FAILURE;
    }
    size_t n_names = 0;
    long long n_clients = 0;
    int rc = -1;
    for (int i = 1; i < argc && rc < 0; i++) {
        const char *arg = argv[i];
        const char *name = NULL;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            s_usage(stdout);
            rc = HAFL_EXIT_OK;
        } else if (strcmp(arg, "--force") == 0)
            force = true;
        else if (strcmp(arg, "--name") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "hafl keygen: --name needs a value\n");
                rc = HAFL_EXIT_USAGE;
            } else
                name = argv[++i];
        } else if (strncmp(arg, "--name=", 7) == 0)
            name = arg + 7;
        else if (strcmp(arg, "--clients") == 0) {
            char *end = NULL;
            n_clients = i + 1 < argc ? strtoll(argv[++i], &end, 10) : 0;
            if (!end || *end || n_clients < 1 || n_clients > 100000) {
                fprintf(stderr, "hafl keygen: --clients needs a count from 1 to 100000\n");
                rc = HAFL_EXIT_USAGE;
            }
        }
        else if (arg[0] == '-') {
            fprintf(stderr, "hafl keygen: unknown option %s (try --help)\n", arg);
            rc = HAFL_EXIT_USAGE;
        } else if (dir) {
            fprintf(stderr, "hafl keygen: unexpected argument '%s' (try --help)\n", arg);
            rc = HAFL_EXIT_USAGE;
        } else
            dir = arg;
        if (name && rc < 0) {
            if (!s_valid_name(name)) {
                fprintf(stderr,
                        "hafl keygen: --name '%s': use 1..%d of A-Z a-z 0-9 . _ -, not "
                        "starting with '.', and not 'server'\n",
                        name, S_MAX_NAME);
                rc = HAFL_EXIT_USAGE;
            }
            for (size_t k = 0; k < n_names && rc < 0; k++)
                if (strcmp(names[k], name) == 0) {
                    fprintf(stderr, "hafl keygen: --name '%s' given twice\n", name);
                    rc = HAFL_EXIT_USAGE;
                }
            names[n_names++] = name;
        }
    }
    if (rc < 0 && !dir) {
        fprintf(stderr, "hafl keygen: missing DIR\n");
        s_usage(stderr);
        rc = HAFL_EXIT_USAGE;
    }
    if (rc < 0 && (!*dir || strpbrk(dir, "\"\n\r"))) {
        fprintf(stderr, "hafl keygen: DIR must be non-empty and hold no quote or newline\n");
        rc = HAFL_EXIT_USAGE;
    }
    if (rc < 0 && n_clients > 0 && n_names > 0) {
        fprintf(stderr, "hafl keygen: --clients and --name do not mix (try --help)\n");
        rc = HAFL_EXIT_USAGE;
    }
    //  --clients N: names client-0 .. client-(N-1) and evaluator, each bound to its place.
    char (*generated)[32] = n_clients > 0 ? calloc((size_t)n_clients + 2, sizeof *generated) : NULL;
    const char **bound_names = n_clients > 0 ? calloc((size_t)n_clients + 2, sizeof *bound_names)
                                             : NULL;
    int64_t *bound = calloc((size_t)(n_clients > 0 ? n_clients + 2 : argc + 1), sizeof *bound);
    if (rc < 0 && (!bound || (n_clients > 0 && (!generated || !bound_names)))) {
        fprintf(stderr, "hafl keygen: out of memory\n");
        rc = HAFL_EXIT_FAILURE;
    }
    if (rc < 0 && n_clients > 0) {
        for (long long k = 0; k < n_clients; k++) {
            snprintf(generated[k], sizeof generated[k], "client-%lld", k);
            bound_names[k] = generated[k];
            bound[k] = k;
        }
        bound_names[n_clients] = "evaluator";
        bound[n_clients] = HAFL_BOUND_EVALUATOR;
        bound_names[n_clients + 1] = "operator";
        bound[n_clients + 1] = HAFL_BOUND_OPERATOR;
    } else if (bound)
        for (size_t k = 0; k <= n_names; k++)
            bound[k] = HAFL_BOUND_NONE;
    if (rc < 0) {
        if (n_names == 0 && n_clients == 0)
            names[n_names++] = "client";
        //  DIR without trailing slashes, so printed paths read DIR/server.cert.
        char *root = strdup(dir);
        size_t len = root ? strlen(root) : 0;
        while (len > 1 && root[len - 1] == '/')
            root[--len] = '\0';
        mode_t old = umask(077);
        rc = !root               ? HAFL_EXIT_FAILURE
             : n_clients > 0 ? s_generate(root, bound_names, bound, (size_t)n_clients + 2, force)
                             : s_generate(root, names, bound, n_names, force);
        umask(old);
        free(root);
    }
    free(generated);
    free(bound_names);
    free(bound);
    free(names);
    return rc;
}
