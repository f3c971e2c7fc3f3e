/* A one-input-channel 3x3 convolution (no padding, stride 1) followed by a 2x2 max pool (stride 2,
 * floor) and an optional epilogue (an activation, then dropout), forward and backward, for a CPU training
 * step; and the same 2x2 max pool with its epilogue alone. ops.py says why they exist; build.py builds them.
 *
 * Layouts: images x[n][h][w] (image and row strides given, columns contiguous), bf16 or fp32; weights
 * w[k][c] with k = 3*ky + kx; the pooled output and its gradient channels-last, out[n][py][px][c], bf16 or
 * fp32; codes[n][py][px][c] say which of the window's four positions (2*dy + dx) won: the first maximum
 * in row-major order, a NaN always winning, as torch's max pool. channels is a multiple of LANES.
 *
 * Sums are fp32. With round_bf16 the weights and the bias are first rounded to bf16, as bf16 autocast
 * casts them, and the pooled maximum is rounded to bf16 on output. torch rounds every convolution output
 * before pooling; rounding is monotonic, so the pooled values are the same, and where two sums round to
 * one bf16 value the gradient may go to the larger sum rather than to the first of the tie.
 *
 * GCC's vector extensions: LANES channels per vector (build.py builds 16, one AVX-512 register, or 8, one
 * AVX2 register), a channel block's nine weights held in registers and each window's four sums computed
 * side by side. Images are split over OpenMP threads; loaded after torch, the library shares torch's own
 * OpenMP runtime (same soname) and so its thread pool, instead of a second set of threads competing for
 * the cores.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* build.py defines LANES, MAX_WIDTH, MAX_CHANNELS and the epilogue kinds KIND_* (numbered from the activation
 * table's kernel kinds): one home for each, in Python. */
#if !defined(LANES) || !defined(MAX_WIDTH) || !defined(MAX_CHANNELS) || !defined(KIND_NONE)
#error "conv_pool.c is compiled by actprof/training/kernels/build.py, which defines its parameters"
#endif
typedef float vf __attribute__((vector_size(LANES * 4)));
typedef int32_t vi __attribute__((vector_size(LANES * 4)));
typedef uint32_t vu __attribute__((vector_size(LANES * 4)));
typedef uint16_t vh __attribute__((vector_size(LANES * 2)));
typedef uint8_t vb __attribute__((vector_size(LANES)));

static inline vf choose(vi mask, vf yes, vf no) { return (vf)((mask & (vi)yes) | (~mask & (vi)no)); }

static inline vf round_to_bf16(vf f) {  /* round to nearest even, as torch; a NaN stays a NaN */
    vu u = (vu)f;
    vu rounded = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    return choose(f != f, f, (vf)rounded);
}

static inline vh to_bf16_bits(vf f) { return __builtin_convertvector((vu)round_to_bf16(f) >> 16, vh); }

static inline vf load_channels(const void *p, int bf16, int64_t at) {
    if (bf16) {
        vh bits;
        memcpy(&bits, (const uint16_t *)p + at, sizeof bits);
        return (vf)(__builtin_convertvector(bits, vu) << 16);
    }
    vf f;
    memcpy(&f, (const float *)p + at, sizeof f);
    return f;
}

/* Stores LANES values, rounded to bf16 (as torch's ops round their fp32 results) or as fp32. */
static inline void store_channels(void *p, int bf16, int64_t at, vf v) {
    if (bf16) {
        const vh bits = to_bf16_bits(v);
        memcpy((uint16_t *)p + at, &bits, sizeof bits);
    } else {
        memcpy((float *)p + at, &v, sizeof v);
    }
}

/* The window's running maximum: position `pos` takes it where its value is larger, or a NaN (torch's rule:
 * the first maximum in row-major order wins ties, a NaN always wins). */
static inline void take_if_larger(vf v, int pos, vf *best, vi *winner) {
    const vi takes = (v > *best) | (v != v);
    *best = choose(takes, v, *best);
    *winner = (takes & pos) | (~takes & *winner);
}

static inline void store_codes(uint8_t *codes, int64_t at, vi winner) {
    const vb code = __builtin_convertvector(winner, vb);
    memcpy(codes + at, &code, sizeof code);
}

static inline vi load_codes(const uint8_t *codes, int64_t at) {
    vb code;
    memcpy(&code, codes + at, sizeof code);
    return __builtin_convertvector(code, vi);
}

/* Each lane's value at its window's winning position (code), of the window's four. */
static inline vf at_winner(vi code, const vf values[4]) {
    vf value = values[0];
    for (int pos = 1; pos < 4; pos++) value = choose(code == pos, values[pos], value);
    return value;
}

/* What the kernel computes besides the convolution and the pool, or NULL for nothing: an activation
 * before the pool, or one after it, then dropout.
 *
 * The activation after the pool (kind 0: none):
 *   kind 1, leaky:  z > 0 ? z : a*z                      (ReLU: a = 0; LeakyReLU: a = its slope >= 0)
 *   kind 2, ELU family: z > 0 ? b*z : b*a*expm1(c*z)     (ELU: (alpha, 1, 1); SELU: (alpha, scale, 1);
 *                                                          CELU: (alpha, 1, 1/alpha); a, b, c > 0)
 *   kind 9, sigmoid: 1 / (1 + exp(-z));  kind 10, tanh
 * torch's formulas. All are non-decreasing and the backward takes the derivative from the output y, as
 * torch's own backwards of these do: 1 or a, b or c*(y + b*a) (the first two keep the sign of z),
 * y*(1 - y), 1 - y^2.
 *
 * Dropout (words NULL: none), exactly actprof.dropout.FastDropout's masks from the same random words: the
 * words are read as `halves` 16-bit numbers, and unit i of the output (its index in memory order) is
 * decided by number i % halves, shifted right by bits * (i / halves): kept when its low `bits` bits, as a
 * number, are at least `dropped` (so dropped with probability dropped / 2^bits). A kept unit is multiplied
 * by scale.
 *
 * The activation before the pool (before, 0: none) is one that is not monotonic, so it must see every
 * value the pool compares (MaxPool(f(z)) differs from f(MaxPool(z))): GELU (erf), GELU (tanh), SiLU, Mish,
 * Hardswish, or PReLU with its learned slope. torch's formulas, computed in fp32 from the bf16-rounded
 * input as torch computes them for bf16 tensors; the backward takes the derivative at the winner's input,
 * recomputed (the convolution) or read again (the pool's input). */
typedef struct {
    int32_t kind;
    float a, b, c;
    const uint32_t *words;
    int64_t halves;
    int32_t bits, dropped;
    float scale;
    int32_t before;
    float slope;
} epilogue;

enum { NO_ACTIVATION = KIND_NONE, LEAKY = KIND_LEAKY, ELU_FAMILY = KIND_ELU_FAMILY, GELU = KIND_GELU,
       GELU_TANH = KIND_GELU_TANH, SILU = KIND_SILU, MISH = KIND_MISH, HARDSWISH = KIND_HARDSWISH, PRELU = KIND_PRELU,
       SIGMOID = KIND_SIGMOID, TANH = KIND_TANH };

/* The struct as this compiler laid it out: sizeof, then each field's offsetof in declaration order, into
 * out[0..n); returns how many it wrote. build.py checks them against its ctypes mirror before any call. */
int epilogue_layout(int64_t *out, int n) {
    const int64_t layout[] = {sizeof(epilogue), offsetof(epilogue, kind), offsetof(epilogue, a), offsetof(epilogue, b),
                              offsetof(epilogue, c), offsetof(epilogue, words), offsetof(epilogue, halves),
                              offsetof(epilogue, bits), offsetof(epilogue, dropped), offsetof(epilogue, scale),
                              offsetof(epilogue, before), offsetof(epilogue, slope)};
    const int count = (int)(sizeof layout / sizeof layout[0]);
    for (int i = 0; i < count && i < n; i++) out[i] = layout[i];
    return count;
}

static inline vf broadcast(float value) { return (vf){0} + value; }

/* expm1(w) for w <= 0 in fp32, within a few ulp: w = n*ln2 + r with r in [-ln2/2, ln2/2], expm1(r) from its
 * Taylor series, and expm1(w) = 2^n * expm1(r) + (2^n - 1), which does not cancel near 0 (n = 0 there). */
static inline vf expm1_nonpositive(vf w) {
    static const float series[] = {1.0f / 5040, 1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f};
    w = choose(w < -87.0f, broadcast(-87.0f), w);   /* exp underflows below: expm1 is -1 there anyway */
    const vi n = __builtin_convertvector(w * 1.44269504f - 0.5f, vi);  /* w <= 0: truncation rounds */
    const vf nf = __builtin_convertvector(n, vf);
    const vf r = (w - nf * 0.693145752f) - nf * 1.42860677e-6f;      /* ln 2 in two parts */
    vf sum = broadcast(series[0]);
    for (int i = 1; i < 7; i++) sum = sum * r + series[i];
    const vf two_to_n = (vf)((n + 127) << 23);
    return two_to_n * (sum * r) + (two_to_n - 1.0f);
}

/* exp(w): w = n*ln2 + r, |r| <= ln2/2, exp(r) from its Taylor series (degree 7: 6e-9); 0 below -87 (where
 * fp32 has only subnormals left) and infinity above 88.5 (where it overflows), as torch's exp gives. */
static inline vf exp_full(vf input) {
    static const float series[] = {1.0f / 5040, 1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f, 1.0f};
    const vf w = choose(input < -87.0f, broadcast(-87.0f), choose(input > 88.0f, broadcast(88.0f), input));
    const vf scaled = w * 1.44269504f;
    const vi n = __builtin_convertvector(scaled + choose(scaled < 0.0f, broadcast(-0.5f), broadcast(0.5f)), vi);
    const vf nf = __builtin_convertvector(n, vf);
    const vf r = (w - nf * 0.693145752f) - nf * 1.42860677e-6f;
    vf sum = broadcast(series[0]);
    for (int i = 1; i < 8; i++) sum = sum * r + series[i];
    const vf result = (vf)((n + 127) << 23) * sum;
    return choose(input < -87.0f, broadcast(0), choose(input > 88.5f, broadcast(__builtin_inff()), result));
}

static inline vf sigmoid(vf z) { return 1.0f / (1.0f + exp_full(-z)); }

/* erf(x) as torch's CPU vector code computes it (Abramowitz and Stegun 7.1.26, within 1.5e-7), given
 * gauss = exp(-x^2), which GELU's derivative shares. */
static inline vf erf_as(vf x, vf gauss) {
    const vf magnitude = choose(x < 0.0f, -x, x);
    const vf t = 1.0f / (0.3275911f * magnitude + 1.0f);
    const vf r = (((1.061405429f * t - 1.453152027f) * t + 1.421413741f) * t - 0.284496736f) * t + 0.254829592f;
    const vf e = 1.0f - r * t * gauss;
    return choose(x < 0.0f, -e, e);
}

static const float SQRT1_2 = 0.70710678118654752f, INV_SQRT_2PI = 0.39894228040143268f;
static const float TANH_BETA = 0.79788456080286536f, TANH_KAPPA = 0.044715f;  /* sqrt(2/pi), GELU's cubic */

/* Mish's tanh(softplus(z)) = n / (n + 2) with n = e^z (e^z + 2), and 1 - tanh^2 = 4 (n + 1) / (n + 2)^2:
 * neither cancels (e^z is clamped at z = 20, where the first is 1 in fp32 and the second is exp(-2z)); the
 * derivative's sigmoid(z) is e^z / (e^z + 1) from the same exponential. */
static inline vf exp_upto_20(vf z) { return exp_full(choose(z > 20.0f, broadcast(20.0f), z)); }

/* GELU's tanh approximation through sigmoids: 1 + tanh(u) = 2 sigmoid(2u) and 1 - tanh(u) = 2 sigmoid(-2u),
 * which do not cancel where the other side goes to 0; u = sqrt(2/pi) (z + 0.044715 z^3). */
static inline vf gelu_tanh_u(vf z) { return TANH_BETA * (z + TANH_KAPPA * z * z * z); }

static inline vf activate_before(const epilogue *post, vf z) {
    switch (post->before) {
        case GELU: return z * 0.5f * (1.0f + erf_as(z * SQRT1_2, exp_full(z * z * -0.5f)));
        case GELU_TANH: return z * sigmoid(2.0f * gelu_tanh_u(z));
        case SILU: return z * sigmoid(z);
        case MISH: {
            const vf e = exp_upto_20(z), n = e * (e + 2.0f);
            return z * n / (n + 2.0f);
        }
        case HARDSWISH: {
            const vf clipped = choose(z + 3.0f < 0.0f, broadcast(0), choose(z + 3.0f > 6.0f, broadcast(6.0f), z + 3.0f));
            return z * clipped / 6.0f;
        }
        case PRELU: return choose(z > 0.0f, z, z * post->slope);
        default: return z;
    }
}

static inline vf derivative_at(const epilogue *post, vf z) {
    switch (post->before) {
        case GELU: {
            const vf gauss = exp_full(z * z * -0.5f);  /* exp(-(z / sqrt 2)^2), in erf too */
            return 0.5f * (1.0f + erf_as(z * SQRT1_2, gauss)) + z * INV_SQRT_2PI * gauss;
        }
        case GELU_TANH: {
            const vf u = gelu_tanh_u(z), up = sigmoid(2.0f * u), down = sigmoid(-2.0f * u);  /* (1 + t) / 2, (1 - t) / 2 */
            return up + 2.0f * z * up * down * TANH_BETA * (1.0f + 3.0f * TANH_KAPPA * z * z);
        }
        case SILU: {
            const vf s = sigmoid(z);
            return s * (1.0f + z * (1.0f - s));
        }
        case MISH: {
            const vf e = exp_upto_20(z), n = e * (e + 2.0f), d = n + 2.0f;
            return (n * d + z * e / (e + 1.0f) * 4.0f * (n + 1.0f)) / (d * d);
        }
        case HARDSWISH: return choose(z <= -3.0f, broadcast(0), choose(z < 3.0f, z / 3.0f + 0.5f, broadcast(1.0f)));
        case PRELU: return choose(z > 0.0f, broadcast(1.0f), broadcast(post->slope));
        default: return broadcast(1.0f);
    }
}

/* What the pool compares at one position: the activation before it of the (rounded) input, rounded as
 * torch rounds the activation's bf16 output. */
static inline vf before_pool(const epilogue *post, vf z, int bf16) {
    if (!post || !post->before) return z;
    if (bf16) z = round_to_bf16(z);
    const vf y = activate_before(post, z);
    return bf16 ? round_to_bf16(y) : y;
}

/* The gradient with respect to the input z of the activation before the pool, from the gradient g of its
 * output; PReLU's slope gradient (z <= 0: z * g) is added to *slope_gradient. */
static inline vf gradient_at_input(const epilogue *post, vf g, vf z, int bf16, vf *slope_gradient) {
    if (bf16) z = round_to_bf16(z);
    if (post->before == PRELU) *slope_gradient += choose(z > 0.0f, broadcast(0), z * g);
    const vf gz = g * derivative_at(post, z);
    return bf16 ? round_to_bf16(gz) : gz;
}

static inline float lane_sum(vf v) {
    float total = 0;
    for (int lane = 0; lane < LANES; lane++) total += v[lane];
    return total;
}

/* tanh(z) = -expm1(-2|z|) / (2 + expm1(-2|z|)), signed: exact to a few ulp near 0 too, where 1 - 2/(e^2z + 1)
 * would cancel. */
static inline vf tanh_accurate(vf z) {
    const vf magnitude = choose(z < 0.0f, -z, z);
    const vf m = expm1_nonpositive(-2.0f * magnitude);
    const vf t = -m / (2.0f + m);
    return choose(z < 0.0f, -t, t);
}

static inline vf activate(const epilogue *post, vf z) {
    if (post->kind == SIGMOID) return sigmoid(z);
    if (post->kind == TANH) return choose(z != z, z, tanh_accurate(z));
    const vi positive = z > 0.0f;
    if (post->kind == LEAKY) return choose(positive, z, post->a == 0 ? broadcast(0) : z * post->a);  /* relu(-inf) = 0 */
    if (post->kind == ELU_FAMILY)
        return choose(positive, z * post->b, post->b * post->a * expm1_nonpositive(choose(positive, broadcast(0), z * post->c)));
    return z;
}

static inline vf derivative_from_output(const epilogue *post, vf y) {
    if (post->kind == SIGMOID) return y * (1.0f - y);
    if (post->kind == TANH) return 1.0f - y * y;
    const vi positive = y > 0.0f;
    if (post->kind == LEAKY) return choose(positive, broadcast(1.0f), broadcast(post->a));
    if (post->kind == ELU_FAMILY) return choose(positive, broadcast(post->b), post->c * (y + post->b * post->a));
    return broadcast(1.0f);
}

/* Which of the LANES units from `unit` on dropout keeps (-1) or drops (0). */
static inline vi kept(const epilogue *post, int64_t unit) {
    const uint16_t *numbers = (const uint16_t *)post->words;  /* little-endian: as torch's int16 view */
    const int64_t halves = post->halves, row = unit / halves, first = unit % halves;
    vu lane;
    if (first + LANES <= halves) {  /* LANES consecutive numbers, one shift: every vector but a few */
        vh bits;
        memcpy(&bits, numbers + first, sizeof bits);
        lane = __builtin_convertvector(bits, vu) >> (uint32_t)(row * post->bits);
    } else {
        for (int j = 0; j < LANES; j++) {
            const int64_t u = unit + j;
            lane[j] = (uint32_t)numbers[u % halves] >> (uint32_t)((u / halves) * post->bits);
        }
    }
    return (vi)((lane & ((1u << post->bits) - 1)) >= (uint32_t)post->dropped);
}

/* The epilogue of LANES pooled values z from `unit` on; y rounded to bf16 where the output is bf16, as
 * torch rounds the activation's output before dropout multiplies it. */
static inline vf finish(const epilogue *post, vf z, int bf16, int64_t unit) {
    if (!post) return z;
    vf y = activate(post, z);
    if (!post->words) return y;
    if (bf16) y = round_to_bf16(y);
    return y * choose(kept(post, unit), broadcast(post->scale), broadcast(0));  /* NaN * 0 stays NaN */
}

/* Whether anything follows the pool (an activation or dropout): only then does the backward read `out`. */
static inline int after_pool(const epilogue *post) { return post && (post->kind != NO_ACTIVATION || post->words); }

/* The gradient with respect to the pooled values z, from the gradient g of the epilogue's output `out`.
 * Under dropout the activation's output of a kept unit is out / scale (up to the rounding of out). */
static inline vf gradient_before(const epilogue *post, vf g, vf out, int64_t unit) {
    if (!post) return g;
    vf y = out;
    if (post->words) {
        g = g * choose(kept(post, unit), broadcast(post->scale), broadcast(0));
        y = out / post->scale;
    }
    return post->kind == NO_ACTIVATION ? g : g * derivative_from_output(post, y);
}

/* Rows [2*py, 2*py + 4) of one image as fp32: every window of pooled row py lies in them. */
static void load_rows(const void *x, int bf16, int64_t start, int64_t row_stride, int width, float *rows) {
    for (int r = 0; r < 4; r++)
        for (int col = 0; col < width; col++) {
            const int64_t at = start + r * row_stride + col;
            if (bf16) {
                const uint32_t u = (uint32_t)((const uint16_t *)x)[at] << 16;
                memcpy(&rows[r * width + col], &u, 4);
            } else {
                rows[r * width + col] = ((const float *)x)[at];
            }
        }
}


/* The convolution's four sums of one pooling window, from its 4x4 input patch (rows `width` apart). */
static inline void window_sums(const float *patch, int width, const vf w[9], vf b, vf acc[4]) {
    for (int pos = 0; pos < 4; pos++) acc[pos] = b;
    for (int ky = 0; ky < 3; ky++)
        for (int kx = 0; kx < 3; kx++)
            for (int pos = 0; pos < 4; pos++) acc[pos] += patch[(ky + (pos >> 1)) * width + kx + (pos & 1)] * w[3 * ky + kx];
}

/* A channel block's nine weights and its bias, rounded to bf16 as autocast rounds them where asked. */
static inline void block_weights(const float *weight, const float *bias, int channels, int block, int round_bf16,
                                 vf w[9], vf *b) {
    for (int k = 0; k < 9; k++) {
        memcpy(&w[k], weight + k * channels + block, sizeof w[k]);
        if (round_bf16) w[k] = round_to_bf16(w[k]);
    }
    memcpy(b, bias + block, sizeof *b);
    if (round_bf16) *b = round_to_bf16(*b);
}

static void forward_images(const void *x, int x_bf16, int64_t image_stride, int64_t row_stride, int height,
                           int width, const float *weight, const float *bias, int channels, int round_bf16, void *out,
                           int out_bf16, uint8_t *codes, const epilogue *post, int64_t first, int64_t last) {
    const int pooled_h = (height - 2) / 2, pooled_w = (width - 2) / 2;
    float rows[4 * MAX_WIDTH];
    for (int64_t n = first; n < last; n++)
        for (int py = 0; py < pooled_h; py++) {
            load_rows(x, x_bf16, n * image_stride + 2 * py * row_stride, row_stride, width, rows);
            for (int block = 0; block < channels; block += LANES) {
                vf w[9], b;
                block_weights(weight, bias, channels, block, round_bf16, w, &b);
                for (int px = 0; px < pooled_w; px++) {
                    const float *patch = rows + 2 * px;  /* the window's 4x4 input patch */
                    vf acc[4];
                    window_sums(patch, width, w, b, acc);
                    for (int pos = 0; pos < 4; pos++) acc[pos] = before_pool(post, acc[pos], out_bf16);
                    vf best = acc[0];
                    vi winner = {0};
                    for (int pos = 1; pos < 4; pos++) take_if_larger(acc[pos], pos, &best, &winner);
                    const int64_t at = ((n * pooled_h + py) * pooled_w + px) * channels + block;
                    if (out_bf16) best = round_to_bf16(best);  /* the pool's output, the activation's input */
                    store_channels(out, out_bf16, at, finish(post, best, out_bf16, at));
                    if (codes) store_codes(codes, at, winner);
                }
            }
        }
}

/* Adds the weight and bias gradients of images [first, last) to grad_weight[k][c] and grad_bias[c] (and
 * PReLU's slope gradient to *grad_slope). With an activation before the pool, its input at the winner is
 * recomputed from the weights, as the forward computed it. */
static void backward_images(const void *x, int x_bf16, int64_t image_stride, int64_t row_stride, int height,
                            int width, const float *weight, const float *bias, int round_bf16, const void *grad,
                            int grad_bf16, const uint8_t *codes, int channels, const void *out, int out_bf16,
                            const epilogue *post, float *grad_weight, float *grad_bias, float *grad_slope,
                            int64_t first, int64_t last) {
    const int pooled_h = (height - 2) / 2, pooled_w = (width - 2) / 2;
    const int before = post && post->before;
    float rows[4 * MAX_WIDTH];
    vf gs = {0};
    for (int block = 0; block < channels; block += LANES) {
        vf gw[9] = {{0}}, gb = {0}, w[9], b;
        if (before) block_weights(weight, bias, channels, block, round_bf16, w, &b);
        for (int64_t n = first; n < last; n++)
            for (int py = 0; py < pooled_h; py++) {
                load_rows(x, x_bf16, n * image_stride + 2 * py * row_stride, row_stride, width, rows);
                for (int px = 0; px < pooled_w; px++) {
                    const int64_t at = ((n * pooled_h + py) * pooled_w + px) * channels + block;
                    vf g = load_channels(grad, grad_bf16, at);
                    if (after_pool(post)) g = gradient_before(post, g, load_channels(out, out_bf16, at), at);
                    const vi code = load_codes(codes, at);
                    if (before) {
                        vf acc[4];
                        window_sums(rows + 2 * px, width, w, b, acc);
                        g = gradient_at_input(post, g, at_winner(code, acc), out_bf16, &gs);
                    }
                    gb += g;
                    for (int pos = 0; pos < 4; pos++) {
                        const float *patch = rows + (pos >> 1) * width + 2 * px + (pos & 1);
                        const vf routed = choose(code == pos, g, broadcast(0));
                        for (int ky = 0; ky < 3; ky++)
                            for (int kx = 0; kx < 3; kx++) gw[3 * ky + kx] += patch[ky * width + kx] * routed;
                    }
                }
            }
        for (int k = 0; k < 9; k++)
            for (int lane = 0; lane < LANES; lane++) grad_weight[k * channels + block + lane] += gw[k][lane];
        for (int lane = 0; lane < LANES; lane++) grad_bias[block + lane] += gb[lane];
    }
    *grad_slope += lane_sum(gs);
}

/* The images [first, last) of each thread: contiguous shares, as OpenMP's static schedule. */
static void share(int64_t images, int64_t *first, int64_t *last) {
    int threads = 1, thread = 0;
#ifdef _OPENMP
    threads = omp_get_num_threads();
    thread = omp_get_thread_num();
#endif
    *first = images * thread / threads;
    *last = images * (thread + 1) / threads;
}

int conv_pool_forward(const void *x, int x_bf16, int64_t image_stride, int64_t row_stride, int height, int width,
                      const float *weight, const float *bias, int channels, int round_bf16, void *out, int out_bf16,
                      uint8_t *codes, int64_t images, const epilogue *post) {
    if (channels % LANES || width > MAX_WIDTH || height < 4 || width < 4) return -1;
#pragma omp parallel
    {
        int64_t first, last;
        share(images, &first, &last);
        forward_images(x, x_bf16, image_stride, row_stride, height, width, weight, bias, channels, round_bf16, out,
                       out_bf16, codes, post, first, last);
    }
    return 0;
}

/* Images per partial sum of the weight and bias gradients. Each chunk is summed by one thread into a slot of
 * its own and the slots are added in chunk order, so the gradients are the same bits at any thread count and
 * in every run (per-thread sums added as each thread finished were neither). Small enough that a training
 * batch gives every thread many chunks. */
#define CHUNK 8

/* Sets grad_weight[k][c] and grad_bias[c] (fp32), and *grad_slope (PReLU before the pool), to the gradients
 * of the images' summed loss; out (the forward's output) is read only when something follows the pool, the
 * weights and bias only with an activation before it. Returns -2 where the partial sums cannot be allocated. */
int conv_pool_backward(const void *x, int x_bf16, int64_t image_stride, int64_t row_stride, int height, int width,
                       const float *weight, const float *bias, int round_bf16, const void *grad, int grad_bf16,
                       const uint8_t *codes, int channels, float *grad_weight, float *grad_bias, float *grad_slope,
                       int64_t images, const void *out, int out_bf16, const epilogue *post) {
    if (channels % LANES || channels > MAX_CHANNELS || width > MAX_WIDTH || height < 4 || width < 4) return -1;
    const int64_t chunks = images > 0 ? (images + CHUNK - 1) / CHUNK : 0;
    const int64_t slot = 10 * (int64_t)channels + 1; /* 9C weights, C biases, PReLU's slope */
    float *partial = calloc(chunks > 0 ? chunks * slot : 1, sizeof(float));
    if (!partial) return -2;
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < chunks; k++) {
        float *sums = partial + k * slot;
        const int64_t first = k * CHUNK, last = first + CHUNK < images ? first + CHUNK : images;
        backward_images(x, x_bf16, image_stride, row_stride, height, width, weight, bias, round_bf16, grad, grad_bf16,
                        codes, channels, out, out_bf16, post, sums, sums + 9 * channels, sums + 10 * channels, first,
                        last);
    }
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < slot; i++) {
        float total = 0;
        for (int64_t k = 0; k < chunks; k++) total += partial[k * slot + i];  /* in chunk order */
        if (i < 9 * channels) grad_weight[i] = total;
        else if (i < 10 * channels) grad_bias[i - 9 * channels] = total;
        else *grad_slope = total;
    }
    free(partial);
    return 0;
}

/* A 2x2 max pool (stride 2, floor) over channels-last x[n][h][w][c], bf16 or fp32, with the same codes as
 * conv_pool_forward, and the epilogue after it (or NULL). The pool only compares, so it is exactly torch's
 * max pool, values and winners. */
int max_pool_forward(const void *x, int bf16, int64_t images, int height, int width, int channels, void *out,
                     uint8_t *codes, const epilogue *post) {
    if (channels % LANES) return -1;
    const int pooled_h = height / 2, pooled_w = width / 2;
    const int64_t offsets[4] = {0, channels, (int64_t)width * channels, (int64_t)(width + 1) * channels};
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < images; n++)
        for (int py = 0; py < pooled_h; py++)
            for (int px = 0; px < pooled_w; px++)
                for (int block = 0; block < channels; block += LANES) {
                    const int64_t corner = ((n * height + 2 * py) * width + 2 * px) * channels + block;
                    vf best = before_pool(post, load_channels(x, bf16, corner), bf16);
                    vi winner = {0};
                    for (int pos = 1; pos < 4; pos++)
                        take_if_larger(before_pool(post, load_channels(x, bf16, corner + offsets[pos]), bf16), pos,
                                       &best, &winner);
                    const int64_t at = ((n * pooled_h + py) * pooled_w + px) * channels + block;
                    store_channels(out, bf16, at, finish(post, best, bf16, at));  /* without one, exact: x's */
                    if (codes) store_codes(codes, at, winner);
                }
    return 0;
}

/* grad_in (channels-last, the input's shape) from grad_out and the codes: each window's gradient goes to
 * its winner, zeros elsewhere, including the last row or column a floor pool leaves out. One pass. With
 * an epilogue, grad_out is first taken back through it (gradient_before), from the forward's output; with
 * an activation before the pool, through it too, at the winner's input x (PReLU's slope gradient into
 * *grad_slope). */
int max_pool_backward(const void *grad_out, int bf16, const uint8_t *codes, int64_t images, int height, int width,
                      int channels, void *grad_in, const void *out, const epilogue *post, const void *x,
                      float *grad_slope) {
    if (channels % LANES) return -1;
    const int pooled_h = height / 2, pooled_w = width / 2;
    const size_t element = bf16 ? 2 : 4;
    const int64_t offsets[4] = {0, channels, (int64_t)width * channels, (int64_t)(width + 1) * channels};
    const int before = post && post->before;
    /* PReLU's slope gradient per image, added in image order after the loop: the same bits at any thread
     * count (an OpenMP reduction adds the threads' sums in an order of its own). */
    float *slopes = before ? calloc(images > 0 ? images : 1, sizeof(float)) : NULL;
    if (before && !slopes) return -2;
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < images; n++) {
        vf gs = {0};
        char *image = (char *)grad_in + n * height * width * channels * element;
        if (height % 2) memset(image + (int64_t)(height - 1) * width * channels * element, 0, width * channels * element);
        for (int py = 0; py < pooled_h; py++) {
            if (width % 2)
                for (int r = 0; r < 2; r++)
                    memset(image + ((int64_t)(2 * py + r) * width + width - 1) * channels * element, 0, channels * element);
            for (int px = 0; px < pooled_w; px++)
                for (int block = 0; block < channels; block += LANES) {
                    const int64_t at = ((n * pooled_h + py) * pooled_w + px) * channels + block;
                    vf g = load_channels(grad_out, bf16, at);
                    if (after_pool(post)) g = gradient_before(post, g, load_channels(out, bf16, at), at);
                    const vi code = load_codes(codes, at);
                    const int64_t corner = ((n * height + 2 * py) * width + 2 * px) * channels + block;
                    if (before) {
                        vf inputs[4];
                        for (int pos = 0; pos < 4; pos++) inputs[pos] = load_channels(x, bf16, corner + offsets[pos]);
                        g = gradient_at_input(post, g, at_winner(code, inputs), bf16, &gs);
                    }
                    for (int pos = 0; pos < 4; pos++)
                        store_channels(grad_in, bf16, corner + offsets[pos], choose(code == pos, g, broadcast(0)));
                }
        }
        if (slopes) slopes[n] = lane_sum(gs);
    }
    float slope_sum = 0;
    for (int64_t n = 0; slopes && n < images; n++) slope_sum += slopes[n];
    free(slopes);
    *grad_slope = slope_sum;
    return 0;
}

/* Keep decisions for dropout at a rate that is no multiple of 1/256 (SELU's alpha dropout at 0.05), where
 * torch's bernoulli_ draws one number at a time from its serial generator (4.5 ms a call for a layer of
 * the seed CNN, a third of SELU's step). Number j of a call is SplitMix64 of seed + j (counter-based, so the
 * threads need no shared state); its low and high 32-bit halves decide units 2j and 2j + 1. A unit is kept
 * (1) when its half is at least `dropped`, else dropped (0): dropped with probability dropped / 2^32, which
 * the caller sets within 2^-33 of the rate. `keep` holds `units` int16 values. */
static inline uint64_t splitmix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

int bernoulli_keep(int16_t *keep, int64_t units, uint64_t seed, uint32_t dropped) {
    const int64_t pairs = units / 2;
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < pairs; j++) {
        const uint64_t z = splitmix64(seed + (uint64_t)j * 0x9E3779B97F4A7C15ull);
        keep[2 * j] = (uint32_t)z >= dropped;
        keep[2 * j + 1] = (uint32_t)(z >> 32) >= dropped;
    }
    if (units % 2) keep[units - 1] = (uint32_t)splitmix64(seed + (uint64_t)pairs * 0x9E3779B97F4A7C15ull) >= dropped;
    return 0;
}
