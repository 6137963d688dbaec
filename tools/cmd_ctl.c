/*  hafl ctl: send one control command to a running server and print its JSON reply.

    The command is checked here first (name, number of arguments, numeric arguments), then sent
    as one CONTROL message (messages/hafl_msg.h) from a DEALER socket to the server's control
    endpoint (topology key server/control). The DEALER adds no empty delimiter frame, so the
    server's ROUTER sees [identity][CONTROL frames]; the reply is one CONTROL_REPLY (a leading
    empty frame, if the server sends one, is skipped). Its JSON document is printed on stdout.
    Exit status: 0 when the server answered ok; 1 when it answered not-ok, the reply was
    malformed or none came within --timeout-ms; 2 on a usage error.
*/
#include "hafl_cmd.h"
#include "hafl_msg.h"
#include "hafl_security.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: hafl ctl ENDPOINT COMMAND [ARGS] [--timeout-ms MS]\n"
            "\n"
            "Send a control command to a running server at ENDPOINT (topology key\n"
            "server/control, e.g. ipc://runs/quickstart/control or tcp://host:5671) and\n"
            "print its JSON reply.\n"
            "\n"
            "commands:\n"
            "  status                         round, clients alive, stragglers, strategy, bytes\n"
            "  swap-aggregator NAME           replace the aggregation strategy at the next\n"
            "                                 round boundary (adaptive, zeropad, zeropad-norm,\n"
            "                                 fedavg, flexlora, flora)\n"
            "  fault straggle CLIENT DELAY_MS delay client CLIENT's uploads by DELAY_MS\n"
            "                                 (1..86400000) from the next round\n"
            "  fault drop CLIENT              drop client CLIENT from the next round\n"
            "  stop                           end the run cleanly (log and final adapter written)\n"
            "\n"
            "options:\n"
            "  --timeout-ms MS   wait at most MS milliseconds for the reply (default 5000)\n"
            "  --cert FILE       with CURVE: the operator's secret certificate (hafl keygen\n"
            "                    --clients writes DIR/operator.cert_secret)\n"
            "  --server-cert FILE  with CURVE: the server's public certificate\n"
            "  --help            this text\n"
            "\n"
            "exit codes: 0 the server answered ok; 1 it answered not-ok, or no valid reply\n"
            "            in time; 2 usage error\n");
}

static bool s_is_uint(const char *text, uint64_t max)
{
    if (!text || !*text)
        return false;
    for (const char *p = text; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    errno = 0;
    unsigned long long v = strtoull(text, NULL, 10);
    return errno == 0 && v <= max;
}

//  Check a command and its arguments; NULL when valid, else the reason.
static const char *s_validate(const char *command, int argc, char **args)
{
    if (streq(command, "status") || streq(command, "stop"))
        return argc == 0 ? NULL : "takes no arguments";
    if (streq(command, "swap-aggregator"))
        return argc == 1 && *args[0] ? NULL : "needs exactly one argument: NAME";
    if (streq(command, "fault")) {
        if (argc >= 1 && streq(args[0], "straggle")) {
            if (argc != 3)
                return "straggle needs CLIENT DELAY_MS";
            if (!s_is_uint(args[1], UINT32_MAX))
                return "CLIENT must be a client index (a non-negative integer)";
            if (!s_is_uint(args[2], 86400000) || strspn(args[2], "0") == strlen(args[2]))
                return "DELAY_MS must be an integer of milliseconds in 1..86400000";
            return NULL;
        }
        if (argc >= 1 && streq(args[0], "drop")) {
            if (argc != 2)
                return "drop needs exactly one argument: CLIENT";
            if (!s_is_uint(args[1], UINT32_MAX))
                return "CLIENT must be a client index (a non-negative integer)";
            return NULL;
        }
        return "needs 'straggle CLIENT DELAY_MS' or 'drop CLIENT'";
    }
    return "unknown command (status, swap-aggregator, fault, stop)";
}

int hafl_cmd_ctl(int argc, char **argv)
{
    uint64_t timeout_ms = 5000;
    const char *cert = NULL, *server_cert = NULL;
    char *positional[3 + HAFL_MSG_MAX_ARGS];
    int n_positional = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (streq(arg, "--help") || streq(arg, "-h")) {
            s_usage(stdout);
            return HAFL_EXIT_OK;
        }
        if (streq(arg, "--timeout-ms")) {
            if (i + 1 >= argc || !s_is_uint(argv[i + 1], 86400000) || streq(argv[i + 1], "0")) {
                fprintf(stderr, "hafl ctl: --timeout-ms needs an integer in 1..86400000\n");
                return HAFL_EXIT_USAGE;
            }
            timeout_ms = strtoull(argv[++i], NULL, 10);
        } else if (streq(arg, "--cert") || streq(arg, "--server-cert")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "hafl ctl: %s needs a file\n", arg);
                return HAFL_EXIT_USAGE;
            }
            *(streq(arg, "--cert") ? &cert : &server_cert) = argv[++i];
        } else if (arg[0] == '-' && arg[1] == '-') {
            fprintf(stderr, "hafl ctl: unknown option %s (try --help)\n", arg);
            return HAFL_EXIT_USAGE;
        } else if (n_positional == (int)(sizeof positional / sizeof positional[0])) {
            fprintf(stderr, "hafl ctl: too many arguments\n");
            return HAFL_EXIT_USAGE;
        } else
            positional[n_positional++] = argv[i];
    }
    if (n_positional < 2) {
        s_usage(stderr);
        return HAFL_EXIT_USAGE;
    }
    const char *endpoint = positional[0], *command = positional[1];
    const char *problem = s_validate(command, n_positional - 2, positional + 2);
    if (problem) {
        fprintf(stderr, "hafl ctl: %s: %s\n", command, problem);
        return HAFL_EXIT_USAGE;
    }
    if (strlen(command) >= HAFL_MSG_MAX_NAME) {
        fprintf(stderr, "hafl ctl: command name too long\n");
        return HAFL_EXIT_USAGE;
    }
    for (int i = 2; i < n_positional; i++)
        if (strlen(positional[i]) > HAFL_MSG_MAX_TEXT) {
            fprintf(stderr, "hafl ctl: argument %d longer than %u bytes\n", i - 1,
                    HAFL_MSG_MAX_TEXT);
            return HAFL_EXIT_USAGE;
        }

    hafl_msg_t *msg = hafl_msg_new(HAFL_MSG_CONTROL);
    if (!msg)
        return HAFL_EXIT_FAILURE;
    hafl_control_t *control = &msg->u.control;
    snprintf(control->command, sizeof control->command, "%s", command);
    control->argc = (uint32_t)(n_positional - 2);
    control->argv = calloc(control->argc + 1, sizeof(char *));
    bool ok = control->argv != NULL;
    for (uint32_t i = 0; ok && i < control->argc; i++)
        ok = (control->argv[i] = strdup(positional[2 + i])) != NULL;
    hafl_msg_error_t err = {0};
    zmsg_t *request = ok ? hafl_msg_encode(msg, &err) : NULL;
    hafl_msg_destroy(&msg);
    if (!request) {
        fprintf(stderr, "hafl ctl: cannot encode the command: %s\n", ok ? err.text : "no memory");
        return HAFL_EXIT_FAILURE;
    }

    if (!cert != !server_cert) {
        fprintf(stderr, "hafl ctl: --cert and --server-cert go together\n");
        zmsg_destroy(&request);
        return HAFL_EXIT_USAGE;
    }
    zsys_init();
    int status = HAFL_EXIT_FAILURE;
    zsock_t *dealer = zsock_new(ZMQ_DEALER);
    zpoller_t *poller = NULL;
    //  CURVE: the operator's certificate, read strictly as every hafl certificate is.
    hafl_security_t *security = NULL;
    if (cert && dealer) {
        hafl_topology_t curve;
        memset(&curve, 0, sizeof curve);
        curve.security.curve = true;
        curve.security.server_cert = (char *)server_cert;
        curve.security.client_cert = (char *)cert;
        char why[512];
        security = hafl_security_new_peer(&curve, 0, why, sizeof why);
        if (!security || hafl_security_apply_client(security, dealer, endpoint, why, sizeof why)) {
            fprintf(stderr, "hafl ctl: %s\n", why);
            hafl_security_destroy(&security);
            zmsg_destroy(&request);
            zsock_destroy(&dealer);
            return HAFL_EXIT_USAGE;
        }
    }
    if (!dealer || zsock_connect(dealer, "%s", endpoint) != 0) {
        fprintf(stderr, "hafl ctl: cannot connect to %s\n", endpoint);
        zmsg_destroy(&request);
        zsock_destroy(&dealer);
        hafl_security_destroy(&security);
        return HAFL_EXIT_USAGE;
    }
    zsock_set_linger(dealer, 0); //  an unreachable server must not hold up the exit
    zsock_set_maxmsgsize(dealer, (int64_t)HAFL_MSG_MAX_JSON + 4096);
    if (zmsg_send(&request, dealer) != 0) {
        fprintf(stderr, "hafl ctl: cannot send to %s\n", endpoint);
        zmsg_destroy(&request);
        goto done;
    }
    poller = zpoller_new(dealer, NULL);
    if (!poller || zpoller_wait(poller, (int)timeout_ms) != dealer) {
        fprintf(stderr, "hafl ctl: no reply from %s within %" PRIu64 " ms\n", endpoint, timeout_ms);
        goto done;
    }
    zmsg_t *reply = zmsg_recv(dealer);
    if (reply && zmsg_size(reply) > 1 && zframe_size(zmsg_first(reply)) == 0) {
        zframe_t *delimiter = zmsg_pop(reply);
        zframe_destroy(&delimiter);
    }
    hafl_msg_t *answer = reply ? hafl_msg_decode(reply, &err) : NULL;
    zmsg_destroy(&reply);
    if (!answer)
        fprintf(stderr, "hafl ctl: malformed reply from %s: %s\n", endpoint, err.text);
    else if (answer->type != HAFL_MSG_CONTROL_REPLY)
        fprintf(stderr, "hafl ctl: %s answered with %s, not CONTROL_REPLY\n", endpoint,
                hafl_msg_type_name(answer->type));
    else {
        printf("%s\n", answer->u.control_reply.json ? answer->u.control_reply.json : "{}");
        status = answer->u.control_reply.ok ? HAFL_EXIT_OK : HAFL_EXIT_FAILURE;
    }
    hafl_msg_destroy(&answer);
done:
    zpoller_destroy(&poller);
    zsock_destroy(&dealer);
    hafl_security_destroy(&security);
    return status;
}
