/*  hafl_signals: SIGINT and SIGTERM as counted events, never as interruptions.

    CZMQ's default handler turns a signal into zsys_interrupted, which cuts short every
    blocking call it reaches: a poller in one actor, the wait in zactor_destroy in another. A
    Ctrl-C during a round then tore down a client while the pool still trained with its
    trainer, or the task while the evaluator still read its weights (crashes, seen with two
    signals 10 ms apart). So the hafl binary keeps signals off the threads that do work:
    hafl_signals_start (first thing in main, before any thread of ours or ZeroMQ context)
    disables CZMQ's handler, installs a counting handler for SIGINT and SIGTERM, blocks them in
    the calling thread (every thread created later inherits the mask, and exec'd nodes start
    the same way) and starts one thread that only receives them.

    What a signal does: until a command calls hafl_signals_catch, the default (the process
    ends by the signal, as any tool does on Ctrl-C). After it, a signal only counts:
    hafl_signals_count and hafl_signals_last let the command's wait loop decide (`hafl run`
    stops the run cleanly, `hafl tail` ends). The third signal ends the process at once with
    status 128 + signal, saying so on stderr: a way out of a shutdown that waits for training
    in flight, and as safe as SIGKILL, which checkpoints are made to survive.
*/
#ifndef HAFL_SIGNALS_H
#define HAFL_SIGNALS_H

//  See above. 0, or -1 (signals then keep their default behaviour).
int hafl_signals_start (void);
//  From now on SIGINT and SIGTERM are counted, not fatal (until the third).
void hafl_signals_catch (void);
//  Signals counted since hafl_signals_catch.
unsigned hafl_signals_count (void);
//  The last signal counted (SIGINT, SIGTERM), or 0.
int hafl_signals_last (void);

#endif
