/* One 3x3, 64 -> 64 channel convolution (stride 1, zero padding 1) by Winograd's minimal
 * filtering F(2x2, 3x3): each 2x2 block of outputs ("tile") costs 16 dot products of 64
 * channels instead of 36, so EDSR-baseline's body (32 of these convolutions, 97 % of its
 * work) needs 2.25x fewer multiply-adds than the direct method (docs/ARCHITECTURE.md,
 * "winograd"). winograd.py builds it with the system C compiler for this CPU, as
 * native.py builds the fast kernel; tests hold it to torch's conv2d.
 *
 * Activations are fp32 in padded channels-last buffers: (h + 3) rows of (w + 3) pixels of
 * 64 channels, pixel (y, x) at row y + 1, column x + 1, the border zero. The padding is the
 * convolution's: every tile reads its 4x4 inputs without a bounds test. Outputs are written
 * only inside the h x w image, so the border stays zero for the next layer.
 *
 *   V = B^T d B   the input transform of every tile, per channel      (16 x tiles x 64)
 *   M = V U       per transform position p: a (tiles x 64) by (64 x 64) product
 *   Y = A^T M A   the output transform, plus the bias, then ReLU or a residual
 *
 * U = G g G^T (16 x 64 x 64) is the filter's transform, computed once by the caller. The
 * tiles go through in blocks of NB, so a block's V and M (196 KB each) stay in cache
 * between the three steps; the product's micro-kernel keeps MR tiles by two vectors of
 * outputs in registers (12 accumulators: fits AVX2's 16 registers, and AVX-512's 32).
 */

#include <stddef.h>
#include <string.h>

#define CH 64      /* channels in and out */
#define NB 48      /* tiles per block: a multiple of MR */
#define MR 6       /* tiles per micro-kernel */

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

/* B^T d B of the tile whose top-left input is `src` (row stride rs), channels c..c+VW,
 * into V[p][b][c] */
static void input_tile(const float *src, ptrdiff_t rs, float *V, int b, int c) {
    vf d[4][4], r[4][4];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            d[i][j] = ld(src + i * rs + j * CH + c);
    for (int j = 0; j < 4; j++) {
        r[0][j] = d[0][j] - d[2][j];
        r[1][j] = d[1][j] + d[2][j];
        r[2][j] = d[2][j] - d[1][j];
        r[3][j] = d[1][j] - d[3][j];
    }
    for (int i = 0; i < 4; i++) {
        float *row = V + (size_t)(i * 4) * NB * CH + (size_t)b * CH + c;
        st(row, r[i][0] - r[i][2]);
        st(row + NB * CH, r[i][1] + r[i][2]);
        st(row + 2 * NB * CH, r[i][2] - r[i][1]);
        st(row + 3 * NB * CH, r[i][1] - r[i][3]);
    }
}

/* M[p] = V[p] U[p] for the block's n tiles (n a multiple of MR) */
static void products(const float *V, const float *U, float *M, int n) {
    for (int p = 0; p < 16; p++) {
        const float *vp = V + (size_t)p * NB * CH, *up = U + (size_t)p * CH * CH;
        float *mp = M + (size_t)p * NB * CH;
        for (int k = 0; k < CH; k += 2 * VW) {
            for (int t = 0; t < n; t += MR) {
                vf acc[MR][2];
                for (int i = 0; i < MR; i++)
                    acc[i][0] = acc[i][1] = (vf){0};
                for (int c = 0; c < CH; c++) {
                    vf u0 = ld(up + c * CH + k), u1 = ld(up + c * CH + k + VW);
                    for (int i = 0; i < MR; i++) {
                        vf a = (vf){0} + vp[(t + i) * CH + c];
                        acc[i][0] += a * u0;
                        acc[i][1] += a * u1;
                    }
                }
                for (int i = 0; i < MR; i++) {
                    st(mp + (t + i) * CH + k, acc[i][0]);
                    st(mp + (t + i) * CH + k + VW, acc[i][1]);
                }
            }
        }
    }
}

/* A^T M A of tile b, channels c..c+VW, plus bias, ReLU or residual, into the outputs at
 * `dst` (and `res` at the same offsets), the ones inside the image (rows, cols: 1 or 2) */
static void output_tile(const float *M, int b, int c, const float *bias, int use_relu,
                        float *dst, const float *res, ptrdiff_t rs, int rows, int cols) {
    vf m[4][4], s[2][4];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            m[i][j] = ld(M + (size_t)(i * 4 + j) * NB * CH + (size_t)b * CH + c);
    for (int j = 0; j < 4; j++) {
        s[0][j] = m[0][j] + m[1][j] + m[2][j];
        s[1][j] = m[1][j] - m[2][j] - m[3][j];
    }
    vf bv = ld(bias + c);
    for (int i = 0; i < rows; i++) {
        vf o[2] = {s[i][0] + s[i][1] + s[i][2] + bv, s[i][1] - s[i][2] - s[i][3] + bv};
        for (int j = 0; j < cols; j++) {
            ptrdiff_t at = i * rs + j * CH + c;
            vf v = use_relu ? relu(o[j]) : o[j];
            if (res)
                v += ld(res + at);
            st(dst + at, v);
        }
    }
}

/* The convolution of `in` into `out` (both padded buffers of an h x w image) for the tile
 * rows [ty0, ty1): out = relu?(conv(in) + bias) (+ res), res a padded buffer or NULL (it
 * may be `out` itself: each output reads only its own pixel of res). U is (16, 64, 64),
 * U[p][c][k]; scratch holds 2 * 16 * NB * 64 floats. Threads may run disjoint tile rows
 * of one layer at once, each with its own scratch. Returns 0, or 1 for bad sizes. */
int winograd_conv(const float *in, float *out, const float *res, int h, int w, const float *U,
                  const float *bias, int use_relu, int ty0, int ty1, float *scratch) {
    int tw = (w + 1) / 2;
    if (h < 1 || w < 1 || ty0 < 0 || ty1 > (h + 1) / 2 || ty0 > ty1)
        return 1;
    ptrdiff_t rs = (ptrdiff_t)(w + 3) * CH;
    float *V = scratch, *M = scratch + 16 * NB * CH;
    long first = (long)ty0 * tw, end = (long)ty1 * tw;
    for (long t0 = first; t0 < end; t0 += NB) {
        int n = end - t0 < NB ? (int)(end - t0) : NB;
        int padded = (n + MR - 1) / MR * MR;   /* the micro-kernel's tail reads the last tile again */
        for (int b = 0; b < padded; b++) {
            long t = t0 + (b < n ? b : n - 1);
            int ty = (int)(t / tw), tx = (int)(t % tw);
            const float *src = in + (ptrdiff_t)(2 * ty) * rs + (ptrdiff_t)(2 * tx) * CH;
            for (int c = 0; c < CH; c += VW)
                input_tile(src, rs, V, b, c);
        }
        products(V, U, M, padded);
        for (int b = 0; b < n; b++) {
            long t = t0 + b;
            int ty = (int)(t / tw), tx = (int)(t % tw);
            int rows = 2 * ty + 1 < h ? 2 : 1, cols = 2 * tx + 1 < w ? 2 : 1;
            ptrdiff_t at = (ptrdiff_t)(2 * ty + 1) * rs + (ptrdiff_t)(2 * tx + 1) * CH;
            for (int c = 0; c < CH; c += VW)
                output_tile(M, b, c, bias, use_relu, out + at, res ? res + at : NULL, rs, rows, cols);
        }
    }
    return 0;
}

/* floats of scratch one thread needs */
long winograd_scratch_floats(void) {
    return 2L * 16 * NB * CH;
}
