/* qa.c — placeholder until the QA loader lands */
#include "qa.h"
#include <string.h>
lc_status qa_load(struct qa_data *q, const char *path, int kind) { memset(q, 0, sizeof *q); (void)kind; return lc_errorf(LC_EUNSUPPORTED, "QA loading of '%s' not implemented yet", path); }
void qa_free(struct qa_data *q) { (void)q; }
