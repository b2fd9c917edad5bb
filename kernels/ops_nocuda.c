/* ops_nocuda.c — the CUDA twins of the common ops in a build without the CUDA backend: each
 * returns LC_EUNSUPPORTED, so code that names them links either way (see ops.h). */
#include "ops.h"

static lc_status no_cuda(const char *fn) {
    return lc_errorf(LC_EUNSUPPORTED, "%s: this build has no CUDA backend (nvcc was not found or CUDA=0)", fn);
}

lc_status ops_matmul_cuda(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                          const void *A, const void *B, int ab_dt, float beta, void *C, int c_dt,
                          void *stream) {
    (void)ta, (void)tb, (void)M, (void)N, (void)K, (void)alpha, (void)A, (void)B, (void)ab_dt;
    (void)beta, (void)C, (void)c_dt, (void)stream;
    return no_cuda(__func__);
}
lc_status ops_matmul_batched_cuda(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                                  const void *A, int64_t sA, const void *B, int64_t sB, int ab_dt,
                                  float beta, void *C, int64_t sC, int c_dt, int64_t batch,
                                  void *stream) {
    (void)ta, (void)tb, (void)M, (void)N, (void)K, (void)alpha, (void)A, (void)sA, (void)B, (void)sB;
    (void)ab_dt, (void)beta, (void)C, (void)sC, (void)c_dt, (void)batch, (void)stream;
    return no_cuda(__func__);
}
lc_status ops_rmsnorm_forward_cuda(int dt, int64_t R, int64_t D, float eps, const void *x,
                                   const void *weight, void *y, float *rstd, void *stream) {
    (void)dt, (void)R, (void)D, (void)eps, (void)x, (void)weight, (void)y, (void)rstd, (void)stream;
    return no_cuda(__func__);
}
lc_status ops_rmsnorm_backward_cuda(int dt, int64_t R, int64_t D, const void *x,
                                    const void *weight, const float *rstd, const void *dy,
                                    void *dx, float *dweight, int accumulate_dx, void *stream) {
    (void)dt, (void)R, (void)D, (void)x, (void)weight, (void)rstd, (void)dy, (void)dx;
    (void)dweight, (void)accumulate_dx, (void)stream;
    return no_cuda(__func__);
}
lc_status ops_rope_forward_cuda(int dt, int64_t B, int64_t L, int64_t Hn, int64_t dh,
                                int64_t pos0, float theta, const void *x, void *y, void *stream) {
    (void)dt, (void)B, (void)L, (void)Hn, (void)dh, (void)pos0, (void)theta, (void)x, (void)y, (void)stream;
    return no_cuda(__func__);
}
lc_status ops_rope_backward_cuda(int dt, int64_t B, int64_t L, int64_t Hn, int64_t dh,
                                 int64_t pos0, float theta, const void *dy, void *dx,
                                 void *stream) {
    (void)dt, (void)B, (void)L, (void)Hn, (void)dh, (void)pos0, (void)theta, (void)dy, (void)dx, (void)stream;
    return no_cuda(__func__);
}
lc_status ops_swiglu_forward_cuda(int dt, int64_t R, int64_t F, int64_t ld, const void *gate,
                                  const void *up, void *y, void *stream) {
    (void)dt, (void)R, (void)F, (void)ld, (void)gate, (void)up, (void)y, (void)stream;
    return no_cuda(__func__);
}
lc_status ops_swiglu_backward_cuda(int dt, int64_t R, int64_t F, int64_t ld, const void *gate,
                                   const void *up, const void *dy, void *dgate, void *dup,
                                   void *stream) {
    (void)dt, (void)R, (void)F, (void)ld, (void)gate, (void)up, (void)dy, (void)dgate, (void)dup, (void)stream;
    return no_cuda(__func__);
}
lc_status ops_embedding_forward_cuda(int dt, int64_t R, int64_t V, int64_t D, const int32_t *ids,
                                     const void *table, void *out, void *stream) {
    (void)dt, (void)R, (void)V, (void)D, (void)ids, (void)table, (void)out, (void)stream;
    return no_cuda(__func__);
}
lc_status ops_embedding_backward_cuda(int dt, int64_t R, int64_t V, int64_t D,
                                      const int32_t *ids, const void *dout, float *dtable,
                                      void *stream) {
    (void)dt, (void)R, (void)V, (void)D, (void)ids, (void)dout, (void)dtable, (void)stream;
    return no_cuda(__func__);
}
lc_status ops_xent_forward_backward_cuda(int dt, int64_t R, int64_t V, const void *logits,
                                         const int32_t *targets, const float *weights,
                                         float norm, float *loss, float *row_loss, void *dlogits,
                                         void *stream) {
    (void)dt, (void)R, (void)V, (void)logits, (void)targets, (void)weights, (void)norm;
    (void)loss, (void)row_loss, (void)dlogits, (void)stream;
    return no_cuda(__func__);
}
lc_status ops_adamw_step_cuda(int64_t n, float *p, const float *grad, float *m, float *v,
                              bf16_t *p_bf16, const struct ops_adamw *h, void *stream) {
    (void)n, (void)p, (void)grad, (void)m, (void)v, (void)p_bf16, (void)h, (void)stream;
    return no_cuda(__func__);
}
void ops_cuda_release(void) {}
