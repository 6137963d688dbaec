/*  hafl_resident: how much memory this process holds right now.

    hafl_resident_mib reads /proc/self/statm, so it is the resident set at the moment of the
    call (unlike getrusage's ru_maxrss, which is the peak so far): what loading a model left
    behind, measured before and after. Linux only; -1 where /proc is unreadable.
*/
#ifndef HAFL_RESIDENT_H
#define HAFL_RESIDENT_H

//  Resident set of this process in MiB, or -1 when it cannot be read.
double hafl_resident_mib(void);

#endif
