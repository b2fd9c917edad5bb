/* qa.c — QA tasks (qa_1 SQuAD, qa_2 HotpotQA). Not implemented in this version: loading the
 * user's files is refused with a message, and `suite gen` skips qa_1/qa_2 without them, so
 * scores are reported as RULER-11. The spec to implement is in qa.h and ruler.md section 3.5. */
#include <string.h>

#include "gen.h"
#include "qa.h"

lc_status qa_load(struct qa_data *q, const char *path, int kind) {
    memset(q, 0, sizeof *q);
    return lc_errorf(LC_EUNSUPPORTED, "%s: the %s loader is not implemented in this version of longctx; qa_%d is skipped (report RULER-11)",
                     path, kind == 1 ? "SQuAD" : "HotpotQA", kind);
}

void qa_free(struct qa_data *q) { (void)q; }

lc_status gen_qa(const struct suite_spec *spec, lc_rng *rng, int64_t target, struct suite_sample *s) {
    (void)spec; (void)rng; (void)target; (void)s;
    return lc_errorf(LC_EUNSUPPORTED, "qa tasks are not implemented in this version (RULER-11)");
}
