/* The fast decoder's per-query work, fused: for each output pixel, every ensemble
 * member's modulated 16-wide render MLP (its code's values read straight from the code
 * table), the blend of their last hidden layers, the output layer, the residual
 * option's bilinear base and the mapping to [0, 1] (docs/LIIF.md sections 5 and 6).
 *
 * Same arithmetic as FastLIIF.decode_hidden + blend_weights + project and the
 * renderer's bilinear_rows (zoomviewer/engine/model/fast.py, engine/ensemble.py,
 * engine/render/residual.py); only the summation order differs (and fused multiply-adds
 * where the compiler makes them). native.py builds it once per machine with the system
 * C compiler, for that CPU, passing the ensemble's constants from engine/ensemble.py;
 * the torch path stays the fallback.
 *
 * One vector holds the 16 units of one member's hidden layer, so a code's table parts
 * load as whole vectors and no query gathers anything. Keeping one pixel's values in
 * registers through all six layers is what the torch path cannot do: there each layer
 * is a pass over memory.
 */

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE__)
#include <immintrin.h>
#endif

#define WIDTH 16
/* the blend's area epsilon is zoomviewer.engine.ensemble.AREA_EPS: one value for every decoder path */
#ifndef AREA_EPS
#error "AREA_EPS is not defined: native.py builds this file with -DAREA_EPS=<ensemble.AREA_EPS>f"
#endif

typedef float v16 __attribute__((vector_size(WIDTH * sizeof(float))));

static inline v16 load(const float *p) {
    v16 v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* ReLU and the dot product on whole registers. A 16-float vector is one AVX-512
 * register, two AVX or four SSE ones; spelled out per width, because compilers turn
 * the generic forms into one scalar compare per unit. */
#if defined(__AVX512F__)
static inline v16 relu(v16 x) {
    return (v16)_mm512_max_ps((__m512)x, _mm512_setzero_ps());
}

static inline float dot(v16 a, v16 b) {
    return _mm512_reduce_add_ps((__m512)(a * b));
}
#elif defined(__AVX__)
typedef union { v16 v; __m256 h[2]; } halves;

static inline v16 relu(v16 x) {
    halves u = {x};
    u.h[0] = _mm256_max_ps(u.h[0], _mm256_setzero_ps());
    u.h[1] = _mm256_max_ps(u.h[1], _mm256_setzero_ps());
    return u.v;
}

static inline float dot(v16 a, v16 b) {
    halves u = {a * b};
    __m256 s8 = _mm256_add_ps(u.h[0], u.h[1]);
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(_mm_add_ss(s4, _mm_shuffle_ps(s4, s4, 1)));
}
#elif defined(__SSE__)
typedef union { v16 v; __m128 q[4]; } quarters;

static inline v16 relu(v16 x) {
    quarters u = {x};
    for (int k = 0; k < 4; k++)
        u.q[k] = _mm_max_ps(u.q[k], _mm_setzero_ps());
    return u.v;
}

static inline float dot(v16 a, v16 b) {
    quarters u = {a * b};
    __m128 s4 = _mm_add_ps(_mm_add_ps(u.q[0], u.q[1]), _mm_add_ps(u.q[2], u.q[3]));
    s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(_mm_add_ss(s4, _mm_shuffle_ps(s4, s4, 1)));
}
#else
static inline v16 relu(v16 x) {
    v16 r;
    for (int u = 0; u < WIDTH; u++)
        r[u] = x[u] > 0.0f ? x[u] : 0.0f;
    return r;
}

static inline float dot(v16 a, v16 b) {
    v16 p = a * b;
    float s = 0.0f;
    for (int u = 0; u < WIDTH; u++)
        s += p[u];
    return s;
}
#endif

/* The last hidden layer of n members (n <= 4), run side by side: each weight column is
 * loaded once for all of them, and their accumulation chains overlap. `code[m]`: member
 * m's table, part p at code[m] + p * part_stride (part 0: the first-layer term, then a
 * scale and a shift per layer). `w_cols`: the hidden layers' weights column by column,
 * (depth - 1) x 16 columns. */
static inline void members_hidden(int n, const float *const *code, ptrdiff_t part_stride, int depth,
                                  v16 w_y, v16 w_x, const v16 *w_cols, const float *rel_y,
                                  const float *rel_x, v16 *h) {
    for (int m = 0; m < n; m++) {
        v16 t = load(code[m]) + w_x * rel_x[m] + w_y * rel_y[m];
        h[m] = relu(load(code[m] + 2 * part_stride) + t * load(code[m] + part_stride));
    }
    for (int layer = 1; layer < depth; layer++) {
        const v16 *w = w_cols + (layer - 1) * WIDTH;
        float hs[4][WIDTH] __attribute__((aligned(64)));
        memcpy(hs, h, n * sizeof hs[0]);
        /* read the units back from memory: a broadcast load per unit, instead of the
           register shuffle the compiler would otherwise pick (it competes with the FMAs) */
        __asm__("" : "+m"(hs));
        v16 acc[4];
#if defined(__AVX512F__)
        /* 32 registers: two chains per member, half the latency to wait on */
        v16 odd[4];
        for (int m = 0; m < n; m++) {
            acc[m] = w[0] * hs[m][0];
            odd[m] = w[1] * hs[m][1];
        }
        for (int k = 2; k < WIDTH; k += 2)
            for (int m = 0; m < n; m++) {
                acc[m] += w[k] * hs[m][k];
                odd[m] += w[k + 1] * hs[m][k + 1];
            }
        for (int m = 0; m < n; m++)
            acc[m] += odd[m];
#else
        /* 16 registers or fewer: a second chain per member would spill */
        for (int m = 0; m < n; m++)
            acc[m] = w[0] * hs[m][0];
        for (int k = 1; k < WIDTH; k++)
            for (int m = 0; m < n; m++)
                acc[m] += w[k] * hs[m][k];
#endif
        for (int m = 0; m < n; m++) {
            const float *scale = code[m] + (1 + 2 * layer) * part_stride;
            h[m] = relu(load(scale + part_stride) + acc[m] * load(scale));
        }
    }
}

/* The residual option's base, bilinear in the source (grid_sample's, border): a window
 * of the source (3 channels, columns contiguous), and per output row and column the
 * two source rows / columns it lies between (relative to the window) and the weight of
 * the second. src == NULL: no residual. */
struct residual {
    const float *src;
    ptrdiff_t channel_stride, row_stride, width;
    const int *y;       /* (2, rows) */
    const float *ty;    /* (rows) */
    const int *x;       /* (2, cols) */
    const float *tx;    /* (cols) */
};

/* torch.lerp's formula (exact at both ends), without a branch: the weights along a row
 * of output pixels cross 0.5 at every source column */
static inline float lerp(float a, float b, float w) {
    float d = b - a, from_a = a + w * d, from_b = b - d * (1.0f - w);
    return w < 0.5f ? from_a : from_b;
}

/* Decode rows x cols pixels into out (rows, cols, 3): the prediction (plus the residual
 * base) mapped from [-1, 1] to [0, 1] and clamped, as the renderer shows it.
 * table: the code table, strides in floats (part, code row, code column; the 16 units
 * of a part are contiguous). Members: n_a along y and n_b along x (both 1, or both 2: the
 * local ensemble); row_code, row_rel are (n_a, rows), col_code, col_rel (n_b, cols): code
 * index into the table and rel_coord (in codes) of each member. w_rel: render_in's
 * rel_coord columns as (16, 2) (y then x). w_cols: (depth - 1, 16, 16), each hidden
 * layer's weight transposed. w_out (3, 16), b_out (3). Returns 0; 1 for a layout this
 * kernel was not built for, 2 when out of memory. */
int fast_decode(const float *table, ptrdiff_t part_stride, ptrdiff_t row_stride, ptrdiff_t col_stride,
                int width, int depth, const float *w_rel, const float *w_cols, const float *w_out,
                const float *b_out, int n_a, const int *row_code, const float *row_rel, int n_b,
                const int *col_code, const float *col_rel, int rows, int cols,
                const struct residual *base, float *out) {
    if (width != WIDTH || n_a < 1 || n_a > 2 || n_b != n_a || depth < 1)
        return 1;
    v16 w_y, w_x, wo[3];
    for (int u = 0; u < WIDTH; u++) {
        w_y[u] = w_rel[2 * u];
        w_x[u] = w_rel[2 * u + 1];
        for (int c = 0; c < 3; c++)
            wo[c][u] = w_out[c * WIDTH + u];
    }
    v16 cols_w[depth > 1 ? (depth - 1) * WIDTH : 1];
    for (int j = 0; j < (depth - 1) * WIDTH; j++)
        cols_w[j] = load(w_cols + j * WIDTH);

    float *base_row = NULL;
    if (base->src != NULL && (base_row = malloc(3 * base->width * sizeof(float))) == NULL)
        return 2;

    for (int i = 0; i < rows; i++) {
        float ry[2];
        const float *row_base[2];
        for (int a = 0; a < n_a; a++) {
            ry[a] = row_rel[a * rows + i];
            row_base[a] = table + (ptrdiff_t)row_code[a * rows + i] * row_stride;
        }
        float *dst = out + (ptrdiff_t)i * cols * 3;
        if (base_row != NULL) {  /* the source rows blended once per output row, for every column */
            const float *top = base->src + (ptrdiff_t)base->y[i] * base->row_stride;
            const float *bottom = base->src + (ptrdiff_t)base->y[rows + i] * base->row_stride;
            float ty = base->ty[i];
            for (int c = 0; c < 3; c++)
                for (ptrdiff_t x = 0; x < base->width; x++)
                    base_row[c * base->width + x] = lerp(top[c * base->channel_stride + x],
                                                         bottom[c * base->channel_stride + x], ty);
        }
        for (int j = 0; j < cols; j++) {
            float rx[2];
            ptrdiff_t col_off[2];
            for (int b = 0; b < n_b; b++) {
                rx[b] = col_rel[b * cols + j];
                col_off[b] = (ptrdiff_t)col_code[b * cols + j] * col_stride;
            }
            v16 h;
            if (n_a == 2) {
                /* each member weighted by the area of the diagonally opposite one */
                const float *code[4] = {row_base[0] + col_off[0], row_base[0] + col_off[1],
                                        row_base[1] + col_off[0], row_base[1] + col_off[1]};
                float my[4] = {ry[0], ry[0], ry[1], ry[1]}, mx[4] = {rx[0], rx[1], rx[0], rx[1]};
                float area[4], total = 0.0f;
                for (int m = 0; m < 4; m++) {
                    float v = my[m] * mx[m];
                    area[m] = (v < 0 ? -v : v) + AREA_EPS;
                }
                total = area[0] + area[1] + area[2] + area[3];
                v16 hm[4];
                members_hidden(4, code, part_stride, depth, w_y, w_x, cols_w, my, mx, hm);
                h = hm[0] * (area[3] / total) + hm[1] * (area[2] / total)
                    + hm[2] * (area[1] / total) + hm[3] * (area[0] / total);
            } else {
                const float *code[1] = {row_base[0] + col_off[0]};
                members_hidden(1, code, part_stride, depth, w_y, w_x, cols_w, ry, rx, &h);
            }
            for (int c = 0; c < 3; c++) {
                float v = dot(wo[c], h) + b_out[c];
                if (base_row != NULL) {
                    const float *r = base_row + c * base->width;
                    v += lerp(r[base->x[j]], r[base->x[cols + j]], base->tx[j]);
                }
                v = v * 0.5f + 0.5f;
                dst[3 * j + c] = v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
            }
        }
    }
    free(base_row);
    return 0;
}
