#!/bin/sh
# A C compiler for the fused kernel that builds as for a CPU without AVX-512 (AVX2 + FMA,
# x86-64-v3): CC=tools/cc_avx2.sh imitates an AVX2 desktop on an AVX-512 machine.
args=""
for a in "$@"; do [ "$a" = "-march=native" ] && a="-march=x86-64-v3"; args="$args $a"; done
exec ${REAL_CC:-gcc} $args
