/* One 3x3 convolution (stride 1, zero padding 1, up to 64 channels in, 256 out) by
 * Winograd's minimal filtering F(m x m, 3 x 3), m = 2 or 4: each m x m block of outputs
 * ("tile") is computed from its (m + 2)^2 transformed inputs, so the products cost
 * (m + 2)^2 / m^2 multiply-adds per output and channel pair instead of 9: 4 for F(2x2),
 * 2.25 for F(4x4) (docs/ARCHITECTURE.md, "winograd"). winograd.py builds this with the
 * system C compiler for this CPU, as native.py builds the fast kernel; tests hold it to
 * torch's conv2d.
 *
 * Activations are fp32 in padded channels-last buffers: (h + 5) rows of (w + 5) pixels of
 * `channels` floats (an output's pixel stride may be larger), pixel (y, x) at row y + 1,
 * column x + 1, the rest zero. The padding is the convolution's and the last tile's
 * overhang: every tile reads its inputs without a bounds test. Outputs are written only inside the h x w image, so the border stays zero
 * for the next layer.
 *
 *   V = B^T d B   the input transform of every tile, per channel      (P x tiles x cin)
 *   M = V U       per transform position p: a (tiles x cin) by (cin x cout) product
 *   Y = A^T M A   the output transform, plus the bias, then ReLU or a residual
 *
 * P = (m + 2)^2. U = G g G^T (P x cin x cout) is the filter's transform, computed once by
 * the caller (winograd.py, in float64). The tiles go through in blocks of NB, so a block's
 * V and M (at most 221 KB each; outputs in chunks of 64 channels) stay in cache between
 * the three steps; the product's micro-kernel keeps MR tiles by two vectors of outputs in
 * registers (12 accumulators: fits AVX2's 16 registers, and AVX-512's 32).
 */

#include <stddef.h>
#include <string.h>

#define MAXCH 64   /* channels in, at most; and out per chunk */
#define MAXOUT 256 /* channels out, at most (a decoder's first layer: 208 or 256) */
#define MR 6       /* tiles per micro-kernel */
#define NB2 48     /* tiles per block for F(2x2): a multiple of MR */
#define NB4 24     /* and for F(4x4), whose tiles have 2.25x the positions */

#if defined(__AVX512F__)
#define VW 16
#elif defined(__AVX__)
#define VW 8
#else
#define VW 4
#endif

typedef float vf __attribute__((vector_size(VW * sizeof(float))));
typedef int vi __attribute__((vector_size(VW * sizeof(int))));

static inline vf ld(const float *p) {
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void st(float *p, vf v) {
    memcpy(p, &v, sizeof v);
}

/* max(v, 0) as a mask: the generic form compiles to one compare per lane on some targets */
static inline vf relu(vf v) {
    return (vf)((vi)v & (v > (vf){0}));
}

/* B^T d for F(2x2): 4 values in, 4 out */
static inline void bt2(const vf *d, vf *r) {
    r[0] = d[0] - d[2];
    r[1] = d[1] + d[2];
    r[2] = d[2] - d[1];
    r[3] = d[1] - d[3];
}

/* B^T d for F(4x4) (Lavin and Gray's points 0, +-1, +-2): 6 values in, 6 out */
static inline void bt4(const vf *d, vf *r) {
    vf four = (vf){0} + 4.0f, five = (vf){0} + 5.0f, two = (vf){0} + 2.0f;
    r[0] = four * d[0] - five * d[2] + d[4];
    r[1] = d[3] + d[4] - four * (d[1] + d[2]);
    r[2] = d[4] - d[3] + four * (d[1] - d[2]);
    r[3] = d[4] - d[2] + two * (d[3] - d[1]);
    r[4] = d[4] - d[2] + two * (d[1] - d[3]);
    r[5] = four * d[1] - five * d[3] + d[5];
}

/* A^T m for F(2x2): 4 in, 2 out */
static inline void at2(const vf *m, vf *o) {
    o[0] = m[0] + m[1] + m[2];
    o[1] = m[1] - m[2] - m[3];
}

/* A^T m for F(4x4): 6 in, 4 out */
static inline void at4(const vf *m, vf *o) {
    vf two = (vf){0} + 2.0f, four = (vf){0} + 4.0f, eight = (vf){0} + 8.0f;
    vf s12 = m[1] + m[2], d12 = m[1] - m[2], s34 = m[3] + m[4], d34 = m[3] - m[4];
    o[0] = m[0] + s12 + s34;
    o[1] = d12 + two * d34;
    o[2] = s12 + four * s34;
    o[3] = d12 + eight * d34 + m[5];
}

/* B^T d B of the tile whose top-left input is `src` (row stride rs, pixel stride cin),
 * channels c..c+VW, into V[p][b][c] (position p = n i + j, block of nb tiles) */
static void input_tile(int m, const float *src, ptrdiff_t rs, int cin, float *V, int nb, int b, int c) {
    int n = m + 2;
    vf d[6], r[6], t[6][6];
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < n; j++)
            d[j] = ld(src + i * rs + j * cin + c);
        if (m == 2)
            bt2(d, t[i]);
        else
            bt4(d, t[i]);
    }
    for (int j = 0; j < n; j++) {
        for (int i = 0; i < n; i++)
            d[i] = t[i][j];
        if (m == 2)
            bt2(d, r);
        else
            bt4(d, r);
        for (int i = 0; i < n; i++)
            st(V + (size_t)(i * n + j) * nb * cin + (size_t)b * cin + c, r[i]);
    }
}

/* M[p] = V[p] U[p][:, k0:k0+kc] for the block's tiles (count a multiple of MR), P positions;
 * U's rows are ucols wide, M's kc. Inlined into products() with constant channel counts,
 * which the compiler needs to keep the micro-kernel's loads and accumulators in registers
 * (runtime counts cost 35 %). kc is a multiple of VW: pairs of vectors, then one. */
static inline __attribute__((always_inline)) void products_of(const float *V, const float *U, float *M, int count, int P,
                                                              int nb, int cin, int ucols, int k0, int kc) {
    for (int p = 0; p < P; p++) {
        const float *vp = V + (size_t)p * nb * cin, *up = U + (size_t)p * cin * ucols + k0;
        float *mp = M + (size_t)p * nb * kc;
        int k = 0;
        for (; k + 2 * VW <= kc; k += 2 * VW) {
            for (int t = 0; t < count; t += MR) {
                vf acc[MR][2];
                for (int i = 0; i < MR; i++)
                    acc[i][0] = acc[i][1] = (vf){0};
                for (int c = 0; c < cin; c++) {
                    vf u0 = ld(up + c * ucols + k), u1 = ld(up + c * ucols + k + VW);
                    for (int i = 0; i < MR; i++) {
                        vf a = (vf){0} + vp[(t + i) * cin + c];
                        acc[i][0] += a * u0;
                        acc[i][1] += a * u1;
                    }
                }
                for (int i = 0; i < MR; i++) {
                    st(mp + (t + i) * kc + k, acc[i][0]);
                    st(mp + (t + i) * kc + k + VW, acc[i][1]);
                }
            }
        }
        if (k < kc) {             /* one vector of outputs left */
            for (int t = 0; t < count; t += MR) {
                vf acc[MR];
                for (int i = 0; i < MR; i++)
                    acc[i] = (vf){0};
                for (int c = 0; c < cin; c++) {
                    vf u0 = ld(up + c * ucols + k);
                    for (int i = 0; i < MR; i++)
                        acc[i] += ((vf){0} + vp[(t + i) * cin + c]) * u0;
                }
                for (int i = 0; i < MR; i++)
                    st(mp + (t + i) * kc + k, acc[i]);
            }
        }
    }
}

/* the shapes the encoders have, with constant counts (see products_of) */
static void products(const float *V, const float *U, float *M, int count, int P, int nb, int cin, int ucols, int k0, int kc) {
    if (cin == 64 && ucols == 64 && kc == 64)
        products_of(V, U, M, count, P, nb, 64, 64, k0, 64);
    else if (cin == 32 && ucols == 32 && kc == 32)
        products_of(V, U, M, count, P, nb, 32, 32, k0, 32);
    else if (cin == 32 && ucols == 64 && kc == 64)
        products_of(V, U, M, count, P, nb, 32, 64, k0, 64);
    else if (cin == 64 && ucols == 208 && kc == 64)     /* the fast decoder's first layer */
        products_of(V, U, M, count, P, nb, 64, 208, k0, 64);
    else if (cin == 64 && ucols == 256 && kc == 64)     /* LIIF's */
        products_of(V, U, M, count, P, nb, 64, 256, k0, 64);
    else
        products_of(V, U, M, count, P, nb, cin, ucols, k0, kc);
}

/* A^T M A of tile b, channels c..c+VW of M (kc wide), plus bias, ReLU or residual, into
 * the outputs at `dst` (and `res` at the same offsets; pixel stride ps, row stride rs),
 * the rows x cols inside the image */
static void output_tile(int m, const float *M, int nb, int b, int c, int kc, const float *bias,
                        int use_relu, float *dst, const float *res, ptrdiff_t rs, int ps, int rows, int cols) {
    int n = m + 2;
    vf mv[6], s[6][4], col[6], o[4];
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < n; j++)
            mv[j] = ld(M + (size_t)(i * n + j) * nb * kc + (size_t)b * kc + c);
        if (m == 2)
            at2(mv, s[i]);
        else
            at4(mv, s[i]);
    }
    vf bv = ld(bias + c);
    for (int j = 0; j < cols; j++) {
        for (int i = 0; i < n; i++)
            col[i] = s[i][j];
        if (m == 2)
            at2(col, o);
        else
            at4(col, o);
        for (int i = 0; i < rows; i++) {
            ptrdiff_t at = i * rs + j * ps + c;
            vf v = o[i] + bv;
            if (use_relu)
                v = relu(v);
            if (res)
                v += ld(res + at);
            st(dst + at, v);
        }
    }
}

/* The convolution of `in` (cin channels) into `out` (cout channels, pixel stride ostride
 * >= cout), both padded buffers of an h x w image, for the tile rows [ty0, ty1) of
 * F(m x m): out = relu?(conv(in) + bias) (+ res), res a padded buffer laid out as out or
 * NULL (it may be `out` itself: each output reads only its own pixel of res). U is
 * (P, cin, cout); the outputs go in chunks of at most MAXCH channels, each block's input
 * transform shared by them. scratch holds winograd_scratch_floats() floats. Threads may
 * run disjoint tile rows of one layer at once, each with its own scratch. Returns 0, or 1
 * for sizes it cannot do. */
int winograd_conv(int m, const float *in, int cin, float *out, int cout, int ostride, const float *res, int h, int w,
                  const float *U, const float *bias, int use_relu, int ty0, int ty1, float *scratch) {
    if (m != 2 && m != 4)
        return 1;
    int tw = (w + m - 1) / m, n = m + 2, P = n * n, nb = m == 2 ? NB2 : NB4;
    if (h < 1 || w < 1 || ty0 < 0 || ty1 > (h + m - 1) / m || ty0 > ty1)
        return 1;
    if (cin < 1 || cin > MAXCH || cin % VW || cout < 1 || cout > MAXOUT || cout % VW || ostride < cout)
        return 1;
    ptrdiff_t irs = (ptrdiff_t)(w + 5) * cin, ors = (ptrdiff_t)(w + 5) * ostride;
    float *V = scratch, *M = scratch + (size_t)P * nb * MAXCH;
    long first = (long)ty0 * tw, end = (long)ty1 * tw;
    for (long t0 = first; t0 < end; t0 += nb) {
        int count = end - t0 < nb ? (int)(end - t0) : nb;
        int padded = (count + MR - 1) / MR * MR;   /* the micro-kernel's tail reads the last tile again */
        for (int b = 0; b < padded; b++) {
            long t = t0 + (b < count ? b : count - 1);
            int ty = (int)(t / tw), tx = (int)(t % tw);
            const float *src = in + (ptrdiff_t)(m * ty) * irs + (ptrdiff_t)(m * tx) * cin;
            for (int c = 0; c < cin; c += VW)
                input_tile(m, src, irs, cin, V, nb, b, c);
        }
        for (int k0 = 0; k0 < cout; k0 += MAXCH) {
            int kc = cout - k0 < MAXCH ? cout - k0 : MAXCH;
            products(V, U, M, padded, P, nb, cin, cout, k0, kc);
            for (int b = 0; b < count; b++) {
                long t = t0 + b;
                int ty = (int)(t / tw), tx = (int)(t % tw);
                int rows = h - m * ty < m ? h - m * ty : m, cols = w - m * tx < m ? w - m * tx : m;
                ptrdiff_t at = (ptrdiff_t)(m * ty + 1) * ors + (ptrdiff_t)(m * tx + 1) * ostride + k0;
                for (int c = 0; c < kc; c += VW)
                    output_tile(m, M, nb, b, c, kc, bias + k0, use_relu, out + at, res ? res + at : NULL,
                                ors, ostride, rows, cols);
            }
        }
    }
    return 0;
}

/* floats of scratch one thread needs: V and M of the larger block */
long winograd_scratch_floats(void) {
    long f2 = 16L * NB2, f4 = 36L * NB4;
    return 2 * (f2 > f4 ? f2 : f4) * MAXCH;
}

/* the vector width the build has, in floats: channel counts must be multiples of it */
int winograd_vector_floats(void) {
    return VW;
}
