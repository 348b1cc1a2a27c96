/* libFuzzer target for the config loader: any bytes, as a config file and as
 * a --set value, must give a config or a clean error, never a crash, a leak
 * or undefined behaviour; a parsed config's resolved text must parse again. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mpicka/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    mk_config cfg;
    if (mk_config_parse(text, size, "fuzz.yaml", NULL, 0, &cfg) == MK_OK) {
        mk_config again;
        if (mk_config_parse(cfg.resolved, strlen(cfg.resolved), "resolved", NULL, 0, &again) != MK_OK) abort();
        if (strcmp(cfg.resolved, again.resolved)) abort();
        mk_config_free(&again);
        mk_config_free(&cfg);
    }
    /* The same bytes as a library session's config: its resolved YAML
     * parses back to itself there too. */
    if (mk_config_parse_session(text, size, "session", NULL, 0, &cfg) == MK_OK) {
        mk_config again;
        if (mk_config_parse_session(cfg.resolved, strlen(cfg.resolved), "resolved", NULL, 0, &again) != MK_OK) abort();
        if (strcmp(cfg.resolved, again.resolved)) abort();
        mk_config_free(&again);
        mk_config_free(&cfg);
    }
    /* The same bytes as the value of a --set, on a valid file. */
    static const char base[] = "x:\n  file: a.h5\n  layers: [a]\noutput: o\n";
    char *set = malloc(size + 16);
    if (set) {
        memcpy(set, "x.layers=", 9);
        memcpy(set + 9, text, strlen(text) + 1);
        char *sets[1] = {set};
        if (mk_config_parse(base, sizeof base - 1, "base.yaml", sets, 1, &cfg) == MK_OK) mk_config_free(&cfg);
        free(set);
    }
    free(text);
    return 0;
}
