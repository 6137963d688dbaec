/*  hafl_signals: SIGINT and SIGTERM counted by a handler, kept off the threads that do work.
    See hafl_signals.h.

    The handler runs on a thread where the signals are not blocked: the one this module starts
    (which does nothing else), or a helper thread a library started before main (OpenBLAS's
    idle workers), never on a thread of ours that sits in a ZeroMQ call. It is async-signal
    safe: atomics, write, signal, kill and _exit only.
*/
#include "hafl_signals.h"

#include <czmq.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static atomic_bool s_catching;
static atomic_uint s_count;
static atomic_int s_last;

static void s_handler(int sig)
{
    if (!atomic_load(&s_catching)) {
        //  The default: the process ends by the signal, as any tool does on Ctrl-C.
        signal(sig, SIG_DFL);
        kill(getpid(), sig);
        return;
    }
    atomic_store(&s_last, sig);
    if (atomic_fetch_add(&s_count, 1) + 1 >= 3) {
        static const char text[] = "hafl: third signal: ending at once (the last checkpoint is "
                                   "intact; --resume continues from it)\n";
        ssize_t ignored = write(STDERR_FILENO, text, sizeof text - 1);
        (void)ignored;
        _exit(128 + sig);
    }
}

//  A thread that only ever receives the signals, so that there is always one to take them.
static void *s_receiver(void *arg)
{
    sigset_t *set = arg;
    pthread_sigmask(SIG_UNBLOCK, set, NULL);
    while (true)
        pause();
    return NULL;
}

int hafl_signals_start(void)
{
    static sigset_t set;
    zsys_handler_set(NULL);
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    //  Replaces an inherited SIG_IGN too (a background job of a non-interactive shell starts
    //  with SIGINT ignored), as CZMQ's handler did, so that `kill -INT` still stops a run.
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = s_handler;
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGINT, &action, NULL) != 0 || sigaction(SIGTERM, &action, NULL) != 0)
        return -1;
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
        return -1;
    pthread_t thread;
    if (pthread_create(&thread, NULL, s_receiver, &set) != 0) {
        pthread_sigmask(SIG_UNBLOCK, &set, NULL);
        return -1;
    }
    pthread_detach(thread);
    return 0;
}

void hafl_signals_catch(void)
{
    atomic_store(&s_catching, true);
}

unsigned hafl_signals_count(void)
{
    return atomic_load(&s_count);
}

int hafl_signals_last(void)
{
    return atomic_load(&s_last);
}
