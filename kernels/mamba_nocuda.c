/* mamba_nocuda.c — the CUDA entry points of mamba.h in a build without the CUDA backend: each
 * returns LC_EUNSUPPORTED with a message, so callers (bench, backend table) link either way. */
#include "mamba.h"

#define NO_CUDA(fn) return lc_errorf(LC_EUNSUPPORTED, "%s: this build has no CUDA backend", fn)

lc_status mamba_conv_forward_cuda(const struct mamba_conv_shape *s, const bf16_t *x, const float *weight,
                                  const float *bias, const bf16_t *tail_in, bf16_t *y, bf16_t *tail_out,
                                  void *stream) {
    (void)s, (void)x, (void)weight, (void)bias, (void)tail_in, (void)y, (void)tail_out, (void)stream;
    NO_CUDA("mamba_conv_forward_cuda");
}
lc_status mamba_conv_backward_cuda(const struct mamba_conv_shape *s, const bf16_t *x, const float *weight,
                                   const float *bias, const bf16_t *tail_in, const bf16_t *dy,
                                   const bf16_t *dtail_out, bf16_t *dx, float *dweight, float *dbias,
                                   bf16_t *dtail_in, void *stream) {
    (void)s, (void)x, (void)weight, (void)bias, (void)tail_in, (void)dy, (void)dtail_out, (void)dx;
    (void)dweight, (void)dbias, (void)dtail_in, (void)stream;
    NO_CUDA("mamba_conv_backward_cuda");
}
lc_status mamba_conv_decode_cuda(const struct mamba_conv_shape *s, const bf16_t *x, const float *weight,
                                 const float *bias, bf16_t *tail, bf16_t *y, void *stream) {
    (void)s, (void)x, (void)weight, (void)bias, (void)tail, (void)y, (void)stream;
    NO_CUDA("mamba_conv_decode_cuda");
}
size_t mamba_scan_workspace_bytes(const struct mamba_scan_shape *s, int backward) {
    (void)s, (void)backward;
    return 0;
}
lc_status mamba_scan_forward_cuda(const struct mamba_scan_shape *s, const bf16_t *x, const float *dt,
                                  const float *dt_bias, const float *A, const bf16_t *Bm, const bf16_t *Cm,
                                  const float *D, const bf16_t *z, const float *h0, bf16_t *y, float *hT,
                                  void *ws, void *stream) {
    (void)s, (void)x, (void)dt, (void)dt_bias, (void)A, (void)Bm, (void)Cm, (void)D, (void)z, (void)h0;
    (void)y, (void)hT, (void)ws, (void)stream;
    NO_CUDA("mamba_scan_forward_cuda");
}
lc_status mamba_scan_backward_cuda(const struct mamba_scan_shape *s, const bf16_t *x, const float *dt,
                                   const float *dt_bias, const float *A, const bf16_t *Bm, const bf16_t *Cm,
                                   const float *D, const bf16_t *z, const float *h0, const bf16_t *dy,
                                   const float *dhT, bf16_t *dx, float *ddt, float *dBm, float *dCm,
                                   bf16_t *dz, float *dh0, float *dA, float *dD, float *ddt_bias,
                                   void *ws, void *stream) {
    (void)s, (void)x, (void)dt, (void)dt_bias, (void)A, (void)Bm, (void)Cm, (void)D, (void)z, (void)h0;
    (void)dy, (void)dhT, (void)dx, (void)ddt, (void)dBm, (void)dCm, (void)dz, (void)dh0, (void)dA, (void)dD;
    (void)ddt_bias, (void)ws, (void)stream;
    NO_CUDA("mamba_scan_backward_cuda");
}
lc_status mamba_scan_decode_cuda(const struct mamba_scan_shape *s, const bf16_t *x, const float *dt,
                                 const float *dt_bias, const float *A, const bf16_t *Bm, const bf16_t *Cm,
                                 const float *D, const bf16_t *z, float *state, bf16_t *y, void *stream) {
    (void)s, (void)x, (void)dt, (void)dt_bias, (void)A, (void)Bm, (void)Cm, (void)D, (void)z, (void)state;
    (void)y, (void)stream;
    NO_CUDA("mamba_scan_decode_cuda");
}
lc_status mamba_fill_random_cuda(void *x, size_t n, int is_bf16, uint64_t seed, float lo, float hi, void *stream) {
    (void)x, (void)n, (void)is_bf16, (void)seed, (void)lo, (void)hi, (void)stream;
    NO_CUDA("mamba_fill_random_cuda");
}
