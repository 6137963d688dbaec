/*  hafl_resident: see hafl_resident.h. */
#include "hafl_resident.h"

#include <stdio.h>
#include <unistd.h>

double hafl_resident_mib(void)
{
    FILE *statm = fopen("/proc/self/statm", "r");
    unsigned long long total = 0, resident = 0;
    int got = statm ? fscanf(statm, "%llu %llu", &total, &resident) : 0;
    if (statm)
        fclose(statm);
    if (got != 2)
        return -1;
    return (double)resident * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0);
}
