/* score.c — placeholder */
#include "score.h"
#include <stdio.h>
int cmd_score(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "not yet\n"); return 2; }
