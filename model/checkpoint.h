/* checkpoint.h — save and load model weights (fp32), optional AdamW state and the step, with the
 * config that made them, in one self-checking file.
 *
 * Layout (little-endian):
 *   0   magic "LCCKPT1\n" (8 bytes)
 *   8   u32 version (= CKPT_VERSION)          12  u32 flags (bit 0: AdamW m and v present)
 *   16  u64 step                              24  u64 config_len
 *   32  u64 n_tensors                         40  u64 header_len (payload starts here, 64-aligned)
 *   48  u64 payload_len                       56  u64 payload_fnv: FNV-1a 64 of the payload
 *   64  u64 header_fnv: FNV-1a 64 of header bytes [0, header_len) with these 8 bytes as zero
 *   72  config text (config_len bytes: lc_config_print output)
 *       n_tensors records: u16 name_len, name, u8 dtype (0 = f32), u8 ndim (1..4), u64 shape[ndim],
 *       u64 offset (bytes from payload start), u64 nbytes
 *       zero padding to header_len
 *   header_len  payload: tensors back to back in record order; the file ends with it
 * Tensors: the parameters of lc_config_tensors in order; with optimizer state, then
 * "adam_m.<name>" and "adam_v.<name>" for each. Saving writes <path>.tmp and renames it, so an
 * interrupted save leaves the previous checkpoint intact.
 *
 * Loading checks, in order, and refuses with a message naming what is wrong: size, magic,
 * version, header bounds, header checksum, stored config (parses; equals the expected config when
 * strict, otherwise only the tensors must agree), every tensor's name/dtype/shape/offset, file
 * length, payload checksum (verified before anything is written to the caller's buffers).
 */
#ifndef LONGCTX_CHECKPOINT_H
#define LONGCTX_CHECKPOINT_H

#include <stdint.h>

#include "common.h"
#include "config.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CKPT_VERSION 1

/* params, adam_m, adam_v: lc_config_param_count(cfg) floats each; adam_m/adam_v NULL = no
 * optimizer state. */
lc_status ckpt_save(const char *path, const lc_config *cfg, uint64_t step, const float *params, const float *adam_m, const float *adam_v);

typedef struct {
    uint64_t step;
    int has_optimizer;  /* the file holds AdamW state */
    lc_config config;   /* the config stored in the file */
    char note[320];     /* non-strict load: the first config difference that was accepted, or "" */
} ckpt_info;

/* Validate `path` against `cfg` and load it. strict: the stored config must equal cfg in every
 * key; otherwise keys that do not change tensor shapes (K, W, Gumbel, init, ...) may differ (the
 * first such difference is in info->note). adam_m/adam_v are filled when both the file has
 * optimizer state and the pointers are non-NULL. info may be NULL. */
lc_status ckpt_load(const char *path, const lc_config *cfg, int strict, float *params, float *adam_m, float *adam_v, ckpt_info *info);

/* Only the header: step, flags and stored config (checks magic, version, header checksum). */
lc_status ckpt_read_info(const char *path, ckpt_info *info);

/* FNV-1a 64 over n bytes, continuing from h (start with CKPT_FNV_INIT). */
#define CKPT_FNV_INIT 0xcbf29ce484222325ull
uint64_t ckpt_fnv1a(uint64_t h, const void *data, size_t n);

#ifdef __cplusplus
}
#endif
#endif
