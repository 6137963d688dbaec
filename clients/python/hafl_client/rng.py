"""hafl's seeded random streams (runtime/hafl_rng.h): xoshiro256** seeded through splitmix64
from (seed, label, index). The synthetic task draws its frozen weights from them, and its
base digest covers those weights, so a client computes the digest by replaying the same
draws bit for bit (synthetic.py).
"""

import math

MASK = (1 << 64) - 1

STREAM_INIT = 1
STREAM_SPLIT = 2
STREAM_SAMPLE = 3
STREAM_FAULTS = 4
STREAM_BATCH = 5
STREAM_SYNTH = 6
STREAM_SCHEME = 7


def _splitmix64(state):
    """(new state, output)."""
    state = (state + 0x9E3779B97F4A7C15) & MASK
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return state, z ^ (z >> 31)


def _rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & MASK


class Rng:
    """One stream; a plain value owned by one thread."""

    def __init__(self, seed, label, index):
        # Mix the three inputs through splitmix so nearby triples give unrelated states.
        mix = seed & MASK
        mix, a = _splitmix64(mix)
        mix ^= (label * 0xD1B54A32D192ED03) & MASK
        mix, b = _splitmix64(mix)
        mix ^= (index * 0xAEF17502108EF2D9) & MASK
        mix, c = _splitmix64(mix)
        state = a ^ _rotl(b, 17) ^ c
        self.s = []
        for _ in range(4):
            state, out = _splitmix64(state)
            self.s.append(out)

    def u64(self):
        s = self.s
        result = (_rotl((s[1] * 5) & MASK, 7) * 9) & MASK
        t = (s[1] << 17) & MASK
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = _rotl(s[3], 45)
        return result

    def below(self, bound):
        """Uniform integer in [0, bound) by rejection on the top of the range."""
        limit = MASK - MASK % bound
        while True:
            x = self.u64()
            if x < limit:
                return x % bound

    def uniform(self):
        """Uniform double in [0, 1) with 53 random bits."""
        return (self.u64() >> 11) * 2.0**-53

    def normal(self):
        """Box-Muller without a cached second value; log and cos are the C library's, as in
        the reference implementation."""
        u1 = 1.0 - self.uniform()
        u2 = self.uniform()
        return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)

    def shuffle(self, values):
        """Fisher-Yates, in place, from the end."""
        for i in range(len(values), 1, -1):
            j = self.below(i)
            values[i - 1], values[j] = values[j], values[i - 1]
