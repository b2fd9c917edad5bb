#!/bin/sh
# generate.sh — regenerates model/presets.c from model/presets/*.cfg (run after editing a .cfg).
cd "$(dirname "$0")/../.."
{
cat <<'H'
/* presets.c — the compiled-in presets: the text of model/presets/<name>.cfg, byte for byte
 * (tests/test_config.c checks they agree). Regenerate after editing a .cfg with model/presets/generate.sh.
 * Every line of a file becomes "line\n" in a C string (backslashes and quotes escaped).
 * The order is the order of `longctx config --list` and of the README's preset table. */
#include <string.h>

#include "config.h"

typedef struct {
    const char *name, *summary, *text;
} preset;

static const preset presets[] = {
H
for n in swa-hsa mamba-hsa swa-gca dense swa mamba tiny-swa-hsa tiny-mamba-hsa tiny-swa-gca tiny-dense tiny-swa tiny-mamba; do
  f=model/presets/$n.cfg
  summary=$(head -1 $f | sed 's/^# [^:]*: //; s/\\/\\\\/g; s/"/\\"/g')
  printf '    {"%s", "%s",\n' "$n" "$summary"
  sed 's/\\/\\\\/g; s/"/\\"/g; s/^/     "/; s/$/\\n"/' $f
  printf '    },\n'
done
cat <<'H'
};
enum { NPRESETS = sizeof presets / sizeof presets[0] };

int lc_config_preset_count(void) { return NPRESETS; }
const char *lc_config_preset_name(int i) { return i >= 0 && i < NPRESETS ? presets[i].name : NULL; }

static const preset *find(const char *name) {
    for (int i = 0; name && i < NPRESETS; i++)
        if (!strcmp(presets[i].name, name)) return &presets[i];
    return NULL;
}
const char *lc_config_preset_text(const char *name) {
    const preset *p = find(name);
    return p ? p->text : NULL;
}
const char *lc_config_preset_summary(const char *name) {
    const preset *p = find(name);
    return p ? p->summary : NULL;
}
H
} > model/presets.c
