#include "gen.h"
lc_status gen_vt(const struct suite_spec *spec, lc_rng *rng, int64_t target, struct suite_sample *s) { (void)spec; (void)rng; (void)target; (void)s; return lc_errorf(LC_EUNSUPPORTED, "not yet"); }
lc_status gen_cwe(const struct suite_spec *spec, lc_rng *rng, int64_t target, struct suite_sample *s) { (void)spec; (void)rng; (void)target; (void)s; return lc_errorf(LC_EUNSUPPORTED, "not yet"); }
lc_status gen_fwe(const struct suite_spec *spec, lc_rng *rng, int64_t target, struct suite_sample *s) { (void)spec; (void)rng; (void)target; (void)s; return lc_errorf(LC_EUNSUPPORTED, "not yet"); }
lc_status gen_qa(const struct suite_spec *spec, lc_rng *rng, int64_t target, struct suite_sample *s) { (void)spec; (void)rng; (void)target; (void)s; return lc_errorf(LC_EUNSUPPORTED, "not yet"); }
lc_status gen_probe(const struct suite_spec *spec, lc_rng *rng, int64_t target, struct suite_sample *s) { (void)spec; (void)rng; (void)target; (void)s; return lc_errorf(LC_EUNSUPPORTED, "not yet"); }
lc_status gen_passkey(const struct suite_spec *spec, lc_rng *rng, int64_t target, struct suite_sample *s) { (void)spec; (void)rng; (void)target; (void)s; return lc_errorf(LC_EUNSUPPORTED, "not yet"); }
lc_status gen_mqar(const struct suite_spec *spec, lc_rng *rng, int64_t target, struct suite_sample *s) { (void)spec; (void)rng; (void)target; (void)s; return lc_errorf(LC_EUNSUPPORTED, "not yet"); }
