/* The configuration module: parsing, defaults, every error message, --set
 * overrides, the resolved YAML (round trip) and reading the file. */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mpicka/config.h"
#include "mpicka/plan.h"
#include "testutil.h"

#define SRC "run.yaml"

/* The smallest valid configuration (4 lines). */
static const char *const minimal = "x:\n"
                                   "  file: acts/resnet18.h5\n"
                                   "  layers: [conv1, \"layer1/*\"]\n"
                                   "output: out\n";

static mk_err parse_with(const char *yaml, char *const *sets, int nsets, mk_config *cfg)
{
    return mk_config_parse(yaml, strlen(yaml), SRC, sets, nsets, cfg);
}

static void parse_ok(const char *yaml, char *const *sets, int nsets, mk_config *cfg)
{
    mk_err err = parse_with(yaml, sets, nsets, cfg);
    ck_assert_msg(err == MK_OK, "parse failed (%s): %s\n--- yaml:\n%s", mk_errname(err), mk_errmsg(),
                  yaml);
    ck_assert_ptr_nonnull(cfg->resolved);
}

static int is_zeroed(const mk_config *cfg)
{
    static const mk_config zero;
    return !memcmp(cfg, &zero, sizeof zero);
}

/* Expects failure with `code`, a message holding every needle, and cfg left empty. */
static void expect_fail(const char *yaml, char *const *sets, int nsets, mk_err code,
                        const char *const *needles)
{
    mk_config cfg;
    memset(&cfg, 0xA5, sizeof cfg); /* the parse must clear whatever was there */
    mk_err err = parse_with(yaml, sets, nsets, &cfg);
    ck_assert_msg(err == code, "expected %s, got %s (%s)\n--- yaml:\n%s", mk_errname(code),
                  mk_errname(err), mk_errmsg(), yaml);
    ck_assert_msg(is_zeroed(&cfg), "cfg not zeroed after a failed parse of:\n%s", yaml);
    for (int i = 0; needles[i]; i++)
        ck_assert_msg(strstr(mk_errmsg(), needles[i]), "message '%s' lacks '%s'\n--- yaml:\n%s",
                      mk_errmsg(), needles[i], yaml);
}

#define NEEDLES(...) ((const char *const[]){__VA_ARGS__, NULL})
#define EXPECT_FAIL(yaml, code, ...) expect_fail(yaml, NULL, 0, code, NEEDLES(__VA_ARGS__))
#define EXPECT_SET_FAIL(yaml, set, code, ...)                                                   \
    expect_fail(yaml, (char *const[]){set}, 1, code, NEEDLES(__VA_ARGS__))

/* minimal + extra top-level lines (which start at line 5). */
static char *with(const char *extra)
{
    char *s = malloc(strlen(minimal) + strlen(extra) + 1);
    strcpy(s, minimal);
    strcat(s, extra);
    return s;
}

static void expect_extra_fail(const char *extra, mk_err code, const char *const *needles)
{
    char *yaml = with(extra);
    expect_fail(yaml, NULL, 0, code, needles);
    free(yaml);
}

static void assert_model_eq(const mk_model_cfg *a, const mk_model_cfg *b)
{
    ck_assert_int_eq(a->nfiles, b->nfiles);
    for (int i = 0; i < a->nfiles; i++) ck_assert_str_eq(a->files[i], b->files[i]);
    ck_assert_str_eq(a->name, b->name);
    ck_assert_int_eq(a->nlayers, b->nlayers);
    for (int i = 0; i < a->nlayers; i++) ck_assert_str_eq(a->layers[i], b->layers[i]);
}

static void assert_cfg_eq(const mk_config *a, const mk_config *b)
{
    ck_assert_int_eq(a->has_x, b->has_x);
    if (a->has_x) assert_model_eq(&a->x, &b->x);
    ck_assert_int_eq(a->nmodels, b->nmodels);
    for (int k = 0; k < a->nmodels; k++) assert_model_eq(&a->models[k], &b->models[k]);
    ck_assert_int_eq(a->has_y, b->has_y);
    if (a->has_y) assert_model_eq(&a->y, &b->y);
    ck_assert(b->has_y || (!b->y.files && !b->y.name && !b->y.layers && !b->y.nlayers));
    ck_assert_int_eq(a->batch_size, b->batch_size);
    ck_assert_int_eq(a->epochs, b->epochs);
    ck_assert_int_eq(a->shuffle, b->shuffle);
    ck_assert(a->seed == b->seed);
    ck_assert_int_eq(a->precision, b->precision);
    ck_assert_int_eq(a->estimator, b->estimator);
    ck_assert_int_eq(a->kernel, b->kernel);
    ck_assert(a->rbf_threshold == b->rbf_threshold);
    ck_assert_int_eq(a->debiased, b->debiased);
    ck_assert_int_eq(a->jackknife, b->jackknife);
    ck_assert_int_eq(a->permutations, b->permutations);
    ck_assert_str_eq(a->output, b->output);
    ck_assert_int_eq(a->progress_seconds, b->progress_seconds);
    ck_assert_int_eq(a->checkpoint.enabled, b->checkpoint.enabled);
    ck_assert_int_eq(a->checkpoint.every, b->checkpoint.every);
    ck_assert_int_eq(a->checkpoint.seconds, b->checkpoint.seconds);
    ck_assert_int_eq(a->plot.enabled, b->plot.enabled);
    if (a->plot.enabled) {
        ck_assert_str_eq(a->plot.file, b->plot.file);
        ck_assert_str_eq(a->plot.style.title, b->plot.style.title);
        ck_assert_int_eq(a->plot.style.cmap, b->plot.style.cmap);
        ck_assert(a->plot.style.vmin == b->plot.style.vmin && a->plot.style.vmax == b->plot.style.vmax);
        ck_assert_int_eq(a->plot.style.annotate, b->plot.style.annotate);
        ck_assert_int_eq(a->plot.style.half, b->plot.style.half);
        ck_assert_int_eq(a->plot.style.invert_y, b->plot.style.invert_y);
        ck_assert_int_eq(a->plot.style.short_names, b->plot.style.short_names);
        ck_assert_int_eq(a->plot.style.errors, b->plot.style.errors);
    }
}

/* cfg->resolved parses back to cfg and reproduces itself. */
static void assert_round_trip(const mk_config *cfg)
{
    mk_config again;
    parse_ok(cfg->resolved, NULL, 0, &again);
    assert_cfg_eq(cfg, &again);
    ck_assert_str_eq(cfg->resolved, again.resolved);
    mk_config_free(&again);
}

/* ------------------------------------------------------------ valid --- */

START_TEST(full_config)
{
    const char *yaml = "# every key given\n"
                       "output: results/r18-vit\n"
                       "x:\n"
                       "  file: acts/resnet18.h5\n"
                       "  name: ResNet-18\n"
                       "  layers: [conv1, \"layer1/*\", layer4.1.conv2]\n"
                       "y:\n"
                       "  file: /data/vit.h5\n"
                       "  name: ViT\n"
                       "  layers:\n"
                       "    - blocks/0\n"
                       "    - 'blocks/1'\n"
                       "batch_size: 512\n"
                       "epochs: 3\n"
                       "shuffle: yes\n"
                       "seed: 42\n"
                       "precision: float32\n";
    mk_config cfg;
    parse_ok(yaml, NULL, 0, &cfg);
    ck_assert_str_eq(cfg.x.files[0], "acts/resnet18.h5");
    ck_assert_str_eq(cfg.x.name, "ResNet-18");
    ck_assert_int_eq(cfg.x.nlayers, 3);
    ck_assert_str_eq(cfg.x.layers[0], "conv1");
    ck_assert_str_eq(cfg.x.layers[1], "layer1/*");
    ck_assert_str_eq(cfg.x.layers[2], "layer4.1.conv2");
    ck_assert_int_eq(cfg.has_y, 1);
    ck_assert_str_eq(cfg.y.files[0], "/data/vit.h5");
    ck_assert_str_eq(cfg.y.name, "ViT");
    ck_assert_int_eq(cfg.y.nlayers, 2);
    ck_assert_str_eq(cfg.y.layers[0], "blocks/0");
    ck_assert_str_eq(cfg.y.layers[1], "blocks/1");
    ck_assert_int_eq(cfg.batch_size, 512);
    ck_assert_int_eq(cfg.epochs, 3);
    ck_assert_int_eq(cfg.shuffle, 1);
    ck_assert(cfg.seed == 42);
    ck_assert_int_eq(cfg.precision, MK_PREC_FLOAT32);
    ck_assert_str_eq(cfg.output, "results/r18-vit");
    assert_round_trip(&cfg);
    mk_config_free(&cfg);
    ck_assert(is_zeroed(&cfg));
}
END_TEST

START_TEST(defaults)
{
    mk_config cfg;
    parse_ok(minimal, NULL, 0, &cfg);
    ck_assert_str_eq(cfg.x.name, "resnet18");
    ck_assert_int_eq(cfg.x.nlayers, 2);
    ck_assert_int_eq(cfg.has_y, 0);
    ck_assert_ptr_null(cfg.y.files);
    ck_assert_int_eq(cfg.batch_size, 256);
    ck_assert_int_eq(cfg.epochs, 1);
    ck_assert_int_eq(cfg.shuffle, 0);
    ck_assert(cfg.seed == 0);
    ck_assert_int_eq(cfg.precision, MK_PREC_FLOAT64);
    ck_assert_str_eq(cfg.output, "out");
    mk_config_free(&cfg);
}
END_TEST

START_TEST(default_name)
{
    static const char *const cases[][2] = {
        {"acts/resnet18.h5", "resnet18"}, {"model", "model"},     {"a.b/c.tar.h5", "c.tar"},
        {"/abs/x.h5", "x"},               {".hidden", ".hidden"}, {"dir/", "dir/"},
        {"acts/resnet18-0-of-4.h5", "resnet18"}, {"acts/resnet18-*.h5", "resnet18"},
        {"acts/shard_??.h5", "shard"}, {"a-of-2.h5", "a-of-2"}, {"*.h5", "*.h5"}, {"run-3-of-x.h5", "run-3-of-x"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char yaml[256];
        snprintf(yaml, sizeof yaml, "x: {file: \"%s\", layers: a}\noutput: o\n", cases[i][0]);
        mk_config cfg;
        parse_ok(yaml, NULL, 0, &cfg);
        ck_assert_str_eq(cfg.x.name, cases[i][1]);
        mk_config_free(&cfg);
    }
}
END_TEST

/* x.file: one file (echoed as a string, as before), a list, or a glob. */
START_TEST(file_lists_and_globs)
{
    mk_config cfg;
    parse_ok("x:\n  file: [acts/r-0-of-2.h5, acts/r-1-of-2.h5]\n  layers: a\noutput: o\n", NULL, 0, &cfg);
    ck_assert_int_eq(cfg.x.nfiles, 2);
    ck_assert_str_eq(cfg.x.files[1], "acts/r-1-of-2.h5");
    ck_assert_str_eq(cfg.x.name, "r");
    ck_assert_ptr_nonnull(strstr(cfg.resolved, "  file: [\"acts/r-0-of-2.h5\", \"acts/r-1-of-2.h5\"]\n"));
    assert_round_trip(&cfg);
    mk_config_free(&cfg);
    char *sets[] = {"x.file=acts/r-*.h5"};
    parse_ok(minimal, sets, 1, &cfg);
    ck_assert_int_eq(cfg.x.nfiles, 1);
    ck_assert_ptr_nonnull(strstr(cfg.resolved, "  file: \"acts/r-*.h5\"\n"));
    assert_round_trip(&cfg);
    mk_config_free(&cfg);
}
END_TEST

/* ids (a section that `false` turns off) and layer_order, and what the
 * models get from them. */
START_TEST(ids_and_layer_order)
{
    mk_config cfg;
    parse_ok(minimal, NULL, 0, &cfg);
    ck_assert_int_eq(cfg.ids.enabled, 1);
    ck_assert_str_eq(cfg.ids.dataset, "ids");
    ck_assert_int_eq(cfg.layer_order, 0);
    ck_assert_int_eq(cfg.x.check_ids, 1);
    ck_assert_str_eq(cfg.x.ids, "ids");
    mk_config_free(&cfg);
    char *yaml = with("ids:\n  dataset: meta/sample\nlayer_order: creation\n");
    parse_ok(yaml, NULL, 0, &cfg);
    ck_assert_str_eq(cfg.x.ids, "meta/sample");
    ck_assert_int_eq(cfg.x.order, 1);
    ck_assert_ptr_nonnull(strstr(cfg.resolved, "\nids:\n  dataset: \"meta/sample\"\nlayer_order: creation\n"));
    assert_round_trip(&cfg);
    mk_config_free(&cfg);
    free(yaml);
    char *sets[] = {"ids=false", "layer_order=natural"};
    parse_ok(minimal, sets, 2, &cfg);
    ck_assert_int_eq(cfg.ids.enabled, 0);
    ck_assert_int_eq(cfg.x.check_ids, 0);
    ck_assert_str_eq(cfg.x.ids, "ids"); /* still never a layer of a glob */
    ck_assert_int_eq(cfg.x.order, 2);
    ck_assert_ptr_nonnull(strstr(cfg.resolved, "\nids: false\nlayer_order: natural\n"));
    assert_round_trip(&cfg);
    mk_config_free(&cfg);
    expect_extra_fail("layer_order: network\n", MK_ECONFIG,
                      NEEDLES(SRC ":5: 'layer_order' must be one of auto, creation, natural"));
    expect_extra_fail("ids: {name: x}\n", MK_ECONFIG, NEEDLES("unknown key 'ids.name'"));
}
END_TEST

/* The likeliest slips: an unquoted glob, a tab, --set KEY VALUE. */
START_TEST(slips_get_hints)
{
    EXPECT_FAIL("x:\n  file: a.h5\n  layers: *\noutput: o\n", MK_ECONFIG, SRC ":3:",
                "quote glob patterns, as in layers: [\"layer*\"]");
    EXPECT_FAIL("x:\n  file: a.h5\n  layers: [*, fc]\noutput: o\n", MK_ECONFIG, "quote glob patterns");
    EXPECT_FAIL("x:\n  file: a.h5\n  layers: *conv\noutput: o\n", MK_ECONFIG, "quote glob patterns");
    EXPECT_FAIL("x:\n  file: a.h5\n  layers: [&conv]\noutput: o\n", MK_ECONFIG, "quote glob patterns");
    EXPECT_FAIL("x:\n\tfile: a.h5\n", MK_ECONFIG, SRC ":2:1: malformed YAML: ", "YAML indents with spaces");
    ck_assert_int_eq(mk_config_check_set("batch_size", "50"), MK_EUSAGE);
    ck_assert_ptr_nonnull(strstr(mk_errmsg(), "write --set batch_size=50"));
    ck_assert_int_eq(mk_config_check_set("batch_size", NULL), MK_EUSAGE);
    ck_assert_ptr_nonnull(strstr(mk_errmsg(), "expected KEY=VALUE"));
    ck_assert_int_eq(mk_config_check_set("batch_size=50", "x"), MK_OK);
}
END_TEST

START_TEST(first_difference)
{
    char a[128], b[128];
    const char *one = "# c\nx:\n  file: \"a\"\nbatch_size: 8\noutput: \"o1\"\nseed: 0\n";
    ck_assert_int_eq(mk_config_first_difference(one, "# other\nx:\n  file: \"a\"\nbatch_size: 8\noutput: \"o2\"\nseed: 0\n",
                                                a, b, sizeof a), 0);
    ck_assert_int_eq(mk_config_first_difference(one, "x:\n  file: \"a\"\nbatch_size: 16\nseed: 0\n", a, b, sizeof a), 1);
    ck_assert_str_eq(a, "batch_size: 8");
    ck_assert_str_eq(b, "batch_size: 16");
    ck_assert_int_eq(mk_config_first_difference(one, "x:\n  file: \"a\"\nbatch_size: 8\n", a, b, sizeof a), 1);
    ck_assert_str_eq(a, "seed: 0");
    ck_assert_str_eq(b, "(no more keys)");
}
END_TEST

START_TEST(scalar_layers)
{
    mk_config cfg;
    parse_ok("x:\n  file: a.h5\n  layers: 'layer1/*'\noutput: o\n", NULL, 0, &cfg);
    ck_assert_int_eq(cfg.x.nlayers, 1);
    ck_assert_str_eq(cfg.x.layers[0], "layer1/*");
    ck_assert_ptr_nonnull(strstr(cfg.resolved, "layers: [\"layer1/*\"]\n"));
    mk_config_free(&cfg);
}
END_TEST

START_TEST(y_absent)
{
    static const char *const ys[] = {"", "y:\n", "y: ~\n", "y: null\n"};
    for (size_t i = 0; i < sizeof ys / sizeof ys[0]; i++) {
        char *yaml = with(ys[i]);
        mk_config cfg;
        parse_ok(yaml, NULL, 0, &cfg);
        ck_assert_int_eq(cfg.has_y, 0);
        ck_assert_ptr_null(cfg.y.files);
        ck_assert_ptr_null(cfg.y.layers);
        ck_assert_ptr_null(strstr(cfg.resolved, "\ny:"));
        mk_config_free(&cfg);
        free(yaml);
    }
}
END_TEST

START_TEST(integers_accepted)
{
    static const struct { const char *text; int64_t value; } cases[] = {
        {"4", 4}, {"+8", 8}, {"'16'", 16}, {"0100", 100}, {"9223372036854775807", INT64_MAX},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char extra[64];
        snprintf(extra, sizeof extra, "epochs: %s\n", cases[i].text); /* a key bounded below only */
        char *yaml = with(extra);
        mk_config cfg;
        parse_ok(yaml, NULL, 0, &cfg);
        ck_assert_int_eq(cfg.epochs, cases[i].value);
        mk_config_free(&cfg);
        free(yaml);
    }
}
END_TEST

START_TEST(booleans)
{
    static const struct { const char *text; int value; } cases[] = {
        {"true", 1}, {"TRUE", 1}, {"Yes", 1}, {"on", 1},   {"ON", 1},
        {"false", 0}, {"False", 0}, {"no", 0}, {"NO", 0}, {"off", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char extra[64];
        snprintf(extra, sizeof extra, "shuffle: %s\n", cases[i].text);
        char *yaml = with(extra);
        mk_config cfg;
        parse_ok(yaml, NULL, 0, &cfg);
        ck_assert_msg(cfg.shuffle == cases[i].value, "shuffle: %s", cases[i].text);
        mk_config_free(&cfg);
        free(yaml);
    }
}
END_TEST

START_TEST(seed_max)
{
    char *yaml = with("seed: 18446744073709551615\n");
    mk_config cfg;
    parse_ok(yaml, NULL, 0, &cfg);
    ck_assert(cfg.seed == UINT64_MAX);
    ck_assert_ptr_nonnull(strstr(cfg.resolved, "\nseed: 18446744073709551615\n"));
    assert_round_trip(&cfg);
    mk_config_free(&cfg);
    free(yaml);
}
END_TEST

START_TEST(precision_values)
{
    static const struct { const char *text; mk_precision value; } cases[] = {
        {"float32", MK_PREC_FLOAT32}, {"Float64", MK_PREC_FLOAT64}, {"'float32'", MK_PREC_FLOAT32},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char extra[64];
        snprintf(extra, sizeof extra, "precision: %s\n", cases[i].text);
        char *yaml = with(extra);
        mk_config cfg;
        parse_ok(yaml, NULL, 0, &cfg);
        ck_assert_int_eq(cfg.precision, cases[i].value);
        mk_config_free(&cfg);
        free(yaml);
    }
}
END_TEST

/* ---------------------------------------------------- structure errors --- */

START_TEST(empty_config)
{
    EXPECT_FAIL("", MK_ECONFIG, SRC ": the configuration is empty");
    EXPECT_FAIL("# nothing\n# here\n", MK_ECONFIG, SRC ": the configuration is empty");
    EXPECT_FAIL("---\n", MK_ECONFIG, SRC ": the configuration is empty");
    EXPECT_FAIL("  \n\n", MK_ECONFIG, SRC ": the configuration is empty");
    mk_config cfg;
    ck_assert_int_eq(mk_config_parse(NULL, 0, SRC, NULL, 0, &cfg), MK_ECONFIG);
    ck_assert(is_zeroed(&cfg));
}
END_TEST

START_TEST(not_a_mapping)
{
    EXPECT_FAIL("- a\n- b\n", MK_ECONFIG, SRC ":1: the configuration must be a mapping", "a list");
    EXPECT_FAIL("\nhello\n", MK_ECONFIG, SRC ":2: the configuration must be a mapping");
}
END_TEST

START_TEST(malformed_yaml)
{
    EXPECT_FAIL("x:\n\tfile: a.h5\n", MK_ECONFIG, SRC ":2:1: malformed YAML: ");
    EXPECT_FAIL("output: out\nx:\n  file: a.h5\n  layers: [a, b\nepochs: 2\n", MK_ECONFIG,
                SRC ":5:", "malformed YAML: did not find expected ',' or ']'",
                "while parsing a flow sequence at line 4");
    EXPECT_FAIL("output: \"out\nepochs: 2\n", MK_ECONFIG, SRC ":3:1: malformed YAML:",
                "quoted scalar");
    EXPECT_FAIL("output: o\n  epochs: 2\n", MK_ECONFIG, SRC ":2:", "malformed YAML");
    /* Bad UTF-8 is reported by libyaml's reader, which gives no line of its own. */
    EXPECT_FAIL("output: o\nepochs: \xff\n", MK_ECONFIG, SRC ":2:9: malformed YAML:");
    mk_config cfg;
    ck_assert_int_eq(mk_config_parse("output: o\0\n", 11, SRC, NULL, 0, &cfg), MK_ECONFIG);
    ck_assert_ptr_nonnull(strstr(mk_errmsg(), SRC ":1:10: malformed YAML: control characters"));
}
END_TEST

START_TEST(unsupported_yaml)
{
    EXPECT_FAIL("x:\n  file: &f a.h5\n  layers: [a]\noutput: *f\n", MK_ECONFIG,
                SRC ":4: aliases (*f) are not supported");
    EXPECT_FAIL("output: a\n---\noutput: b\n", MK_ECONFIG, SRC ":2: only one YAML document");
    EXPECT_FAIL("x:\n  file: a.h5\n  layers: a\noutput: \"a\\0b\"\n", MK_ECONFIG,
                SRC ":4: NUL characters are not allowed");
    EXPECT_FAIL("? [a, b]\n: c\n", MK_ECONFIG, SRC ":1: keys must be plain strings");
    char deep[512] = "output: ";
    for (int i = 0; i < 100; i++) strcat(deep, "[");
    for (int i = 0; i < 100; i++) strcat(deep, "]");
    EXPECT_FAIL(deep, MK_ECONFIG, SRC ":1: values nest deeper than");
}
END_TEST

START_TEST(missing_required)
{
    EXPECT_FAIL("output: o\n", MK_ECONFIG, SRC ": missing required key 'x'");
    EXPECT_FAIL("x: {layers: a}\noutput: o\n", MK_ECONFIG, SRC ": missing required key 'x.file'");
    EXPECT_FAIL("x: {file: a.h5}\noutput: o\n", MK_ECONFIG,
                SRC ": missing required key 'x.layers'");
    EXPECT_FAIL("x: {file: a.h5, layers: a}\n", MK_ECONFIG, SRC ": missing required key 'output'");
    expect_extra_fail("y: {file: b.h5}\n", MK_ECONFIG,
                      NEEDLES(SRC ": missing required key 'y.layers'", "when 'y' is given"));
    expect_extra_fail("y:\n  layers: [a]\n", MK_ECONFIG,
                      NEEDLES(SRC ": missing required key 'y.file'"));
}
END_TEST

START_TEST(unknown_keys)
{
    expect_extra_fail("batchsize: 8\n", MK_ECONFIG,
                      NEEDLES(SRC ":5: unknown key 'batchsize' (did you mean 'batch_size'?)"));
    expect_extra_fail("epoch: 2\n", MK_ECONFIG,
                      NEEDLES(SRC ":5: unknown key 'epoch' (did you mean 'epochs'?)"));
    expect_extra_fail("file: a.h5\n", MK_ECONFIG,
                      NEEDLES(SRC ":5: unknown key 'file' (did you mean 'x.file'?)"));
    expect_extra_fail("frobnicate: 1\n", MK_ECONFIG,
                      NEEDLES(SRC ":5: unknown key 'frobnicate' (see mpicka run --help"));
    char *msg_has_no_guess = with("frobnicate: 1\n");
    mk_config cfg;
    ck_assert_int_eq(parse_with(msg_has_no_guess, NULL, 0, &cfg), MK_ECONFIG);
    ck_assert_ptr_null(strstr(mk_errmsg(), "did you mean"));
    free(msg_has_no_guess);
}
END_TEST

START_TEST(unknown_nested_keys)
{
    EXPECT_FAIL("x:\n  fil: a.h5\n  layers: a\noutput: o\n", MK_ECONFIG,
                SRC ":2: unknown key 'x.fil' (did you mean 'x.file'?)");
    EXPECT_FAIL("x:\n  file: a.h5\n  layer: a\noutput: o\n", MK_ECONFIG,
                SRC ":3: unknown key 'x.layer' (did you mean 'x.layers'?)");
    expect_extra_fail("y:\n  file: b.h5\n  nmae: B\n  layers: a\n", MK_ECONFIG,
                      NEEDLES(SRC ":7: unknown key 'y.nmae' (did you mean 'y.name'?)"));
    /* A key misplaced at the top level is found under its section. */
    expect_extra_fail("name: foo\n", MK_ECONFIG, NEEDLES("did you mean 'x.name'?"));
    EXPECT_FAIL("x.file: a.h5\noutput: o\n", MK_ECONFIG, SRC ":1: key 'x.file' holds a '.'");
}
END_TEST

START_TEST(duplicate_keys)
{
    expect_extra_fail("output: again\n", MK_ECONFIG,
                      NEEDLES(SRC ":5: duplicate key 'output'", "first given at line 4"));
    EXPECT_FAIL("x:\n  file: a.h5\n  file: b.h5\n  layers: a\noutput: o\n", MK_ECONFIG,
                SRC ":3: duplicate key 'x.file'");
    EXPECT_FAIL("x: {file: a, layers: a, layers: b}\noutput: o\n", MK_ECONFIG,
                SRC ":1: duplicate key 'x.layers'");
}
END_TEST

/* ------------------------------------------------------- value errors --- */

START_TEST(wrong_types)
{
    EXPECT_FAIL("x:\n  file: a.h5\n  layers: {a: 1}\noutput: o\n", MK_ECONFIG,
                SRC ":3: 'x.layers' must be a list of strings");
    EXPECT_FAIL("x:\n  file: a.h5\n  layers: [a, [b]]\noutput: o\n", MK_ECONFIG,
                SRC ":3: 'x.layers' must be a list of strings");
    EXPECT_FAIL("x:\n  file: {a: b}\n  layers: a\noutput: o\n", MK_ECONFIG,
                SRC ":2: 'x.file' must be a list of strings, got a mapping");
    EXPECT_FAIL("x: a.h5\noutput: o\n", MK_ECONFIG, SRC ":1: 'x' must be a mapping");
    expect_extra_fail("y: [b.h5]\n", MK_ECONFIG, NEEDLES(SRC ":5: 'y' must be a mapping"));
    expect_extra_fail("batch_size: [8]\n", MK_ECONFIG,
                      NEEDLES(SRC ":5: 'batch_size' must be an integer, got a list"));
    expect_extra_fail("shuffle: {a: 1}\n", MK_ECONFIG,
                      NEEDLES(SRC ":5: 'shuffle' must be true or false, got a mapping"));
    expect_extra_fail("precision: [float32]\n", MK_ECONFIG, NEEDLES(SRC ":5: 'precision' must be"));
    expect_extra_fail("seed: [1]\n", MK_ECONFIG, NEEDLES(SRC ":5: 'seed' must be an integer"));
    EXPECT_FAIL("x: {file: a.h5, layers: a}\noutput: [o]\n", MK_ECONFIG,
                SRC ":2: 'output' must be a string");
}
END_TEST

START_TEST(empty_values)
{
    EXPECT_FAIL("x:\n  file: ''\n  layers: a\noutput: o\n", MK_ECONFIG,
                SRC ":2: 'x.file' must not have empty entries");
    EXPECT_FAIL("x:\n  file: a.h5\n  layers: []\noutput: o\n", MK_ECONFIG,
                SRC ":3: 'x.layers' must list at least one entry");
    EXPECT_FAIL("x:\n  file: a.h5\n  layers: [a, \"\"]\noutput: o\n", MK_ECONFIG,
                SRC ":3: 'x.layers' must not have empty entries");
    EXPECT_FAIL("x:\n  file: a.h5\n  layers:\n    - a\n    -\noutput: o\n", MK_ECONFIG,
                SRC ":5: 'x.layers' must not have empty entries");
    EXPECT_FAIL("x:\n  file: a.h5\n  layers: \"\"\noutput: o\n", MK_ECONFIG,
                SRC ":3: 'x.layers' must not have empty entries");
    EXPECT_FAIL("x:\n  file: a.h5\n  name: \"\"\n  layers: a\noutput: o\n", MK_ECONFIG,
                SRC ":3: 'x.name' must not be empty");
    EXPECT_FAIL("x: {file: a.h5, layers: a}\noutput:\n", MK_ECONFIG, SRC ":2: 'output' has no value");
    EXPECT_FAIL("x: ~\noutput: o\n", MK_ECONFIG, SRC ":1: 'x' has no value");
    expect_extra_fail("epochs: ~\n", MK_ECONFIG, NEEDLES(SRC ":5: 'epochs' has no value"));
}
END_TEST

START_TEST(integer_errors)
{
    /* {as written, as the message quotes it} */
    static const char *const junk[][2] = {{"abc", "abc"},   {"1.5", "1.5"}, {"12abc", "12abc"},
                                          {"0x10", "0x10"}, {"1e3", "1e3"}, {"''", ""},
                                          {"'1 2'", "1 2"}, {"'-'", "-"},   {"+", "+"}};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
        char extra[64], want[128];
        snprintf(extra, sizeof extra, "batch_size: %s\n", junk[i][0]);
        snprintf(want, sizeof want, SRC ":5: 'batch_size' must be an integer, got '%s'", junk[i][1]);
        expect_extra_fail(extra, MK_ECONFIG, NEEDLES(want));
    }
    expect_extra_fail("batch_size: 99999999999999999999\n", MK_ECONFIG,
                      NEEDLES(SRC ":5: 'batch_size' must be an integer of at most 9223372036854775807",
                              "got '99999999999999999999'"));
}
END_TEST

START_TEST(integer_minimums)
{
    expect_extra_fail("batch_size: 2\n", MK_ECONFIG,
                      NEEDLES(SRC ":5: 'batch_size' must be at least 4, got '2'"));
    expect_extra_fail("batch_size: -5\n", MK_ECONFIG,
                      NEEDLES(SRC ":5: 'batch_size' must be at least 4, got '-5'"));
    expect_extra_fail("batch_size: -99999999999999999999\n", MK_ECONFIG,
                      NEEDLES(SRC ":5: 'batch_size' must be at least 4"));
    expect_extra_fail("epochs: 0\n", MK_ECONFIG, NEEDLES(SRC ":5: 'epochs' must be at least 1, got '0'"));
}
END_TEST

/* batch_size's upper bound (MK_MAX_BATCH) is the table's, checked with the others. */
START_TEST(integer_maximums)
{
    char *yaml = with("batch_size: 46341\n");
    mk_config cfg;
    parse_ok(yaml, NULL, 0, &cfg);
    ck_assert_int_eq(cfg.batch_size, MK_MAX_BATCH);
    mk_config_free(&cfg);
    free(yaml);
    expect_extra_fail("batch_size: 46342\n", MK_ECONFIG,
                      NEEDLES(SRC ":5: batch_size 46342 is too large (at most 46341)"));
    expect_extra_fail("batch_size: +9223372036854775807\n", MK_ECONFIG,
                      NEEDLES(SRC ":5: batch_size 9223372036854775807 is too large (at most 46341)"));
}
END_TEST

START_TEST(bool_errors)
{
    expect_extra_fail("shuffle: maybe\n", MK_ECONFIG,
                      NEEDLES(SRC ":5: 'shuffle' must be true or false, got 'maybe'"));
    expect_extra_fail("shuffle: 1\n", MK_ECONFIG,
                      NEEDLES(SRC ":5: 'shuffle' must be true or false, got '1'"));
}
END_TEST

START_TEST(seed_errors)
{
    static const char *const bad[] = {"18446744073709551616", "-1", "1.0", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char extra[64], want[160];
        snprintf(extra, sizeof extra, "seed: %s\n", bad[i]);
        snprintf(want, sizeof want,
                 SRC ":5: 'seed' must be an integer from 0 to 18446744073709551615, got '%s'", bad[i]);
        expect_extra_fail(extra, MK_ECONFIG, NEEDLES(want));
    }
}
END_TEST

START_TEST(precision_errors)
{
    expect_extra_fail("precision: float16\n", MK_ECONFIG,
                      NEEDLES(SRC ":5: 'precision' must be one of float32, float64, got 'float16'"));
}
END_TEST

/* --------------------------------------------------------------- --set --- */

START_TEST(set_scalars)
{
    char *sets[] = {"batch_size=512", "shuffle=true", "seed=7", "precision=float32",
                    "output=res/a b", "x.file=other/b.h5"};
    mk_config cfg;
    parse_ok(minimal, sets, 6, &cfg);
    ck_assert_int_eq(cfg.batch_size, 512);
    ck_assert_int_eq(cfg.shuffle, 1);
    ck_assert(cfg.seed == 7);
    ck_assert_int_eq(cfg.precision, MK_PREC_FLOAT32);
    ck_assert_str_eq(cfg.output, "res/a b");
    ck_assert_str_eq(cfg.x.files[0], "other/b.h5");
    ck_assert_str_eq(cfg.x.name, "b"); /* the default follows the overridden file */
    assert_round_trip(&cfg);
    mk_config_free(&cfg);
}
END_TEST

START_TEST(set_lists)
{
    char *flow[] = {"x.layers=[conv1, 'layer1/*']"};
    mk_config cfg;
    parse_ok("x: {file: a.h5, layers: old}\noutput: o\n", flow, 1, &cfg);
    ck_assert_int_eq(cfg.x.nlayers, 2);
    ck_assert_str_eq(cfg.x.layers[0], "conv1");
    ck_assert_str_eq(cfg.x.layers[1], "layer1/*");
    mk_config_free(&cfg);
    char *scalar[] = {"x.layers=fc"};
    parse_ok(minimal, scalar, 1, &cfg);
    ck_assert_int_eq(cfg.x.nlayers, 1);
    ck_assert_str_eq(cfg.x.layers[0], "fc");
    mk_config_free(&cfg);
}
END_TEST

START_TEST(set_creates_y)
{
    char *sets[] = {"y.file=vit/b.h5", "y.layers=[blocks/0, blocks/1]"};
    static const char *const files[] = {minimal, "x: {file: a.h5, layers: a}\ny: ~\noutput: o\n"};
    for (int i = 0; i < 2; i++) {
        mk_config cfg;
        parse_ok(files[i], sets, 2, &cfg);
        ck_assert_int_eq(cfg.has_y, 1);
        ck_assert_str_eq(cfg.y.files[0], "vit/b.h5");
        ck_assert_str_eq(cfg.y.name, "b");
        ck_assert_int_eq(cfg.y.nlayers, 2);
        ck_assert_str_eq(cfg.y.layers[1], "blocks/1");
        ck_assert_ptr_nonnull(strstr(cfg.resolved, "\ny:\n  file: \"vit/b.h5\"\n"));
        assert_round_trip(&cfg);
        mk_config_free(&cfg);
    }
    EXPECT_SET_FAIL(minimal, "y.file=vit.h5", MK_ECONFIG,
                    SRC ": missing required key 'y.layers' (required when 'y' is given)");
}
END_TEST

START_TEST(set_order_and_completion)
{
    char *sets[] = {"epochs=2", "epochs=5"};
    mk_config cfg;
    parse_ok(minimal, sets, 2, &cfg);
    ck_assert_int_eq(cfg.epochs, 5);
    mk_config_free(&cfg);
    char *output[] = {"output=from-cli"}; /* a required key may come from --set alone */
    parse_ok("x: {file: a.h5, layers: a}\n", output, 1, &cfg);
    ck_assert_str_eq(cfg.output, "from-cli");
    mk_config_free(&cfg);
}
END_TEST

START_TEST(set_errors)
{
    EXPECT_SET_FAIL(minimal, "foo", MK_EUSAGE, "--set 'foo': expected KEY=VALUE");
    EXPECT_SET_FAIL(minimal, "=5", MK_EUSAGE, "--set '=5': expected KEY=VALUE");
    EXPECT_SET_FAIL(minimal, "epochs=", MK_EUSAGE, "--set 'epochs=': the value is empty");
    EXPECT_SET_FAIL(minimal, "epochs=# nothing", MK_EUSAGE, "the value is empty");
    EXPECT_SET_FAIL(minimal, "batchsize=5", MK_ECONFIG,
                    "--set batchsize=5: unknown key 'batchsize' (did you mean 'batch_size'?)");
    EXPECT_SET_FAIL(minimal, "x.fil=a.h5", MK_ECONFIG,
                    "--set x.fil=a.h5: unknown key 'x.fil' (did you mean 'x.file'?)");
    EXPECT_SET_FAIL(minimal, "y=b.h5", MK_ECONFIG, "--set y=b.h5: 'y' is a section", "'y.file'");
    EXPECT_SET_FAIL(minimal, "x.layers=[a, b", MK_ECONFIG, "--set x.layers=[a, b: malformed YAML");
    EXPECT_SET_FAIL(minimal, "x.layers=*", MK_ECONFIG, "--set x.layers=*: malformed YAML");
    EXPECT_SET_FAIL(minimal, "x.layers={a: b}", MK_ECONFIG,
                    "--set x.layers={a: b}: 'x.layers' must be a list of strings");
    EXPECT_SET_FAIL("x: {file: a, layers: a}\ny: 5\noutput: o\n", "y.file=b", MK_ECONFIG,
                    SRC ":2: 'y' must be a mapping");
}
END_TEST

START_TEST(set_value_message)
{
    char *sets[] = {"batch_size=abc"};
    mk_config cfg;
    ck_assert_int_eq(parse_with(minimal, sets, 1, &cfg), MK_ECONFIG);
    ck_assert_str_eq(mk_errmsg(), "--set batch_size=abc: 'batch_size' must be an integer, got 'abc'");
    ck_assert(is_zeroed(&cfg));
}
END_TEST

/* The shipped configs stay valid as the keys change. */
START_TEST(shipped_configs_parse)
{
    const char *names[] = {"configs/demo.yaml", "configs/reference.yaml", "configs/seeds.yaml"};
    for (int i = 0; i < 3; i++) {
        char path[1024], *text;
        size_t len;
        snprintf(path, sizeof path, "%s/%s", MK_TEST_SOURCE_DIR, names[i]);
        ck_assert_int_eq(mk_read_text_file(path, &text, &len), MK_OK);
        mk_config cfg;
        mk_err err = mk_config_parse(text, len, path, NULL, 0, &cfg);
        ck_assert_msg(err == MK_OK, "%s: %s", names[i], mk_errmsg());
        assert_round_trip(&cfg);
        mk_config_free(&cfg);
        free(text);
    }
}
END_TEST

/* ---------------------------------------------------------------- plot --- */

START_TEST(plot_defaults_on)
{
    mk_config cfg;
    parse_ok(minimal, NULL, 0, &cfg);
    ck_assert_int_eq(cfg.plot.enabled, 1);
    ck_assert_str_eq(cfg.plot.file, "cka.png");
    ck_assert_str_eq(cfg.plot.style.title, "");
    ck_assert_str_eq(mk_plot_cmaps[cfg.plot.style.cmap], "magma");
    ck_assert(cfg.plot.style.vmin == 0.0 && cfg.plot.style.vmax == 1.0);
    mk_config_free(&cfg);
}
END_TEST

START_TEST(plot_section_values_and_off)
{
    mk_config cfg;
    char yaml[512];
    snprintf(yaml, sizeof yaml, "%splot:\n  cmap: viridis\n  vmin: -0.25\n  vmax: 1e0\n  title: \"A: b\"\n"
             "  annotate: false\n  half: yes\n  short_names: 2\n  file: m.svg\n", minimal);
    parse_ok(yaml, NULL, 0, &cfg);
    ck_assert_str_eq(mk_plot_cmaps[cfg.plot.style.cmap], "viridis");
    ck_assert(cfg.plot.style.vmin == -0.25 && cfg.plot.style.vmax == 1.0);
    ck_assert_str_eq(cfg.plot.style.title, "A: b");
    ck_assert_int_eq(cfg.plot.style.annotate, 2);
    ck_assert_int_eq(cfg.plot.style.half, 1);
    ck_assert_int_eq(cfg.plot.style.short_names, 2);
    ck_assert_str_eq(cfg.plot.file, "m.svg");
    assert_round_trip(&cfg);
    mk_config_free(&cfg);
    snprintf(yaml, sizeof yaml, "%splot: false\n", minimal);
    parse_ok(yaml, NULL, 0, &cfg);
    ck_assert_int_eq(cfg.plot.enabled, 0);
    ck_assert_ptr_nonnull(strstr(cfg.resolved, "\nplot: false\n"));
    ck_assert_ptr_null(strstr(cfg.resolved, "cmap"));
    assert_round_trip(&cfg);
    mk_config_free(&cfg);
    char *sets[] = {"plot=false"};
    parse_ok(minimal, sets, 1, &cfg);
    ck_assert_int_eq(cfg.plot.enabled, 0);
    mk_config_free(&cfg);
    char *sets2[] = {"plot.vmax=0.5"};
    parse_ok(minimal, sets2, 1, &cfg);
    ck_assert_int_eq(cfg.plot.enabled, 1);
    ck_assert(cfg.plot.style.vmax == 0.5);
    mk_config_free(&cfg);
}
END_TEST

START_TEST(plot_errors)
{
    char yaml[512];
    snprintf(yaml, sizeof yaml, "%splot:\n  vmin: low\n", minimal);
    EXPECT_FAIL(yaml, MK_ECONFIG, "run.yaml:6", "'plot.vmin' must be a finite number, got 'low'");
    snprintf(yaml, sizeof yaml, "%splot:\n  vmax: .nan\n", minimal);
    EXPECT_FAIL(yaml, MK_ECONFIG, "'plot.vmax' must be a finite number");
    snprintf(yaml, sizeof yaml, "%splot:\n  cmap: jet\n", minimal);
    EXPECT_FAIL(yaml, MK_ECONFIG, "'plot.cmap' must be one of", "magma", "'jet'");
    snprintf(yaml, sizeof yaml, "%splot: maybe\n", minimal);
    EXPECT_FAIL(yaml, MK_ECONFIG, "'plot' must be true or false, got 'maybe'");
    snprintf(yaml, sizeof yaml, "%splot:\n  cmpa: magma\n", minimal);
    EXPECT_FAIL(yaml, MK_ECONFIG, "did you mean 'plot.cmap'");
}
END_TEST

START_TEST(estimator_keys)
{
    mk_config cfg;
    char *yaml = with("estimator: hsic0\nkernel: rbf\nrbf_threshold: 0.5\njackknife: 0\npermutations: 99\n");
    parse_ok(yaml, NULL, 0, &cfg);
    ck_assert_int_eq(cfg.estimator, MK_EST_HSIC0);
    ck_assert_int_eq(cfg.kernel, MK_KERNEL_RBF);
    ck_assert(cfg.rbf_threshold == 0.5);
    ck_assert_int_eq(cfg.jackknife, 0);
    ck_assert_int_eq(cfg.permutations, 99);
    assert_round_trip(&cfg);
    mk_config_free(&cfg);
    free(yaml);
    yaml = with("estimator: exact\ndebiased: false\n");
    parse_ok(yaml, NULL, 0, &cfg);
    ck_assert_int_eq(cfg.estimator, MK_EST_EXACT);
    ck_assert_int_eq(cfg.debiased, 0);
    mk_config_free(&cfg);
    free(yaml);
}
END_TEST

START_TEST(estimator_errors)
{
    expect_extra_fail("estimator: hsic2\n", MK_ECONFIG, NEEDLES("run.yaml:5", "'estimator' must be one of", "exact"));
    expect_extra_fail("rbf_threshold: 0\n", MK_ECONFIG, NEEDLES("run.yaml:5", "'rbf_threshold' must be between 1e-150 and 1e150"));
    expect_extra_fail("jackknife: 1\n", MK_ECONFIG, NEEDLES("run.yaml:5", "at least 2 groups"));
    expect_extra_fail("permutations: -1\n", MK_ECONFIG, NEEDLES("'permutations'"));
    expect_extra_fail("estimator: exact\nkernel: rbf\n", MK_ECONFIG, NEEDLES("run.yaml:6", "needs 'kernel: linear'"));
    expect_extra_fail("estimator: exact\npermutations: 10\n", MK_ECONFIG,
                      NEEDLES("run.yaml:6", "'permutations' needs a minibatch estimator"));
    expect_extra_fail("estimator: exact\nepochs: 2\n", MK_ECONFIG, NEEDLES("'epochs' must be 1"));
    char *yaml = with("estimator: exact\n");
    EXPECT_SET_FAIL(yaml, "kernel=rbf", MK_ECONFIG, "--set kernel=rbf", "needs 'kernel: linear'");
    free(yaml);
}
END_TEST

/* ------------------------------------------------------------ resolved --- */

START_TEST(resolved_text)
{
    mk_config cfg;
    parse_ok(minimal, NULL, 0, &cfg);
    ck_assert_str_eq(cfg.resolved, "# mpicka resolved configuration\n"
                                   "x:\n"
                                   "  file: \"acts/resnet18.h5\"\n"
                                   "  name: \"resnet18\"\n"
                                   "  layers: [\"conv1\", \"layer1/*\"]\n"
                                   "batch_size: 256\n"
                                   "epochs: 1\n"
                                   "shuffle: false\n"
                                   "shuffle_block: 1\n"
                                   "seed: 0\n"
                                   "precision: float64\n"
                                   "estimator: hsic1\n"
                                   "kernel: linear\n"
                                   "rbf_threshold: 1\n"
                                   "debiased: true\n"
                                   "jackknife: 20\n"
                                   "permutations: 0\n"
                                   "output: \"out\"\n"
                                   "progress_seconds: 30\n"
                                   "threads: 0\n"
                                   "checkpoint:\n"
                                   "  every: 0\n"
                                   "  seconds: 600\n"
                                   "ids:\n"
                                   "  dataset: \"ids\"\n"
                                   "layer_order: auto\n"
                                   "plot:\n"
                                   "  file: \"cka.png\"\n"
                                   "  title: \"\"\n"
                                   "  cmap: magma\n"
                                   "  vmin: 0\n"
                                   "  vmax: 1\n"
                                   "  annotate: auto\n"
                                   "  half: false\n"
                                   "  invert_y: false\n"
                                   "  short_names: 0\n"
                                   "  errors: false\n");
    assert_round_trip(&cfg);
    mk_config_free(&cfg);
}
END_TEST

START_TEST(resolved_escapes)
{
    /* {as written in YAML, the string it means} */
    static const char *const cases[][2] = {
        {"\"say \\\"hi\\\"\"", "say \"hi\""},
        {"'it''s'", "it's"},
        {"\"back\\\\slash\"", "back\\slash"},
        {"\"a: b # c\"", "a: b # c"},
        {"\"Gr\xC3\xB6\xC3\x9F" "e \xE5\xB1\xA4 \xF0\x9F\x99\x82\"", "Gr\xC3\xB6\xC3\x9F" "e \xE5\xB1\xA4 \xF0\x9F\x99\x82"},
        {"\"tab\\there\\nnewline\\r\"", "tab\there\nnewline\r"},
        {"\"\\x01ctl\\x7f\"", "\x01" "ctl\x7f"},
        {"\"nel\\Nls\\Lps\\P\"", "nel\xC2\x85ls\xE2\x80\xA8ps\xE2\x80\xA9"},
        {"\"\\uFEFFbom\\u0080\"", "\xEF\xBB\xBF" "bom\xC2\x80"},
        {"\"  pad  \"", "  pad  "},
        {"\"null\"", "null"}, {"\"~\"", "~"}, {"\"true\"", "true"}, {"\"123\"", "123"},
        {"\"*star\"", "*star"}, {"\"[x], {y}\"", "[x], {y}"}, {"\"- dash\"", "- dash"},
        {"\"%pct @at `tick\"", "%pct @at `tick"},
    };
    size_t n = sizeof cases / sizeof cases[0];
    char yaml[4096] = "output: \"out: dir #1\"\nx:\n  file: \"C:\\\\acts\\\\m\\u00e9.h5\"\n"
                      "  name: \"q\\\"uote\"\n  layers:\n";
    for (size_t i = 0; i < n; i++) {
        strcat(yaml, "    - ");
        strcat(yaml, cases[i][0]);
        strcat(yaml, "\n");
    }
    mk_config cfg;
    parse_ok(yaml, NULL, 0, &cfg);
    ck_assert_str_eq(cfg.output, "out: dir #1");
    ck_assert_str_eq(cfg.x.files[0], "C:\\acts\\m\xC3\xA9.h5");
    ck_assert_str_eq(cfg.x.name, "q\"uote");
    ck_assert_int_eq(cfg.x.nlayers, (int)n);
    for (size_t i = 0; i < n; i++) ck_assert_str_eq(cfg.x.layers[i], cases[i][1]);
    assert_round_trip(&cfg);
    mk_config_free(&cfg);
}
END_TEST

START_TEST(resolved_limits)
{
    char *sets[] = {"epochs=9223372036854775807", "seed=18446744073709551615", "shuffle=on"};
    mk_config cfg;
    parse_ok(minimal, sets, 3, &cfg);
    ck_assert_ptr_nonnull(strstr(cfg.resolved, "\nepochs: 9223372036854775807\n"));
    ck_assert_ptr_nonnull(strstr(cfg.resolved, "\nshuffle: true\n"));
    assert_round_trip(&cfg);
    mk_config_free(&cfg);
}
END_TEST

/* ------------------------------------------------------ files, misc --- */

static void write_bytes(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

START_TEST(read_file_ok)
{
    char *dir = tu_tmpdir(), *path = tu_path(dir, "run.yaml"), *text = NULL;
    size_t len = 0;
    tu_write_text(path, minimal);
    ck_assert_int_eq(mk_read_text_file(path, &text, &len), MK_OK);
    ck_assert_uint_eq(len, strlen(minimal));
    ck_assert_str_eq(text, minimal);
    free(text);
    write_bytes(path, "", 0);
    ck_assert_int_eq(mk_read_text_file(path, &text, &len), MK_OK);
    ck_assert_uint_eq(len, 0);
    ck_assert_str_eq(text, "");
    free(text);
    tu_rmrf(dir);
    free(path);
    free(dir);
}
END_TEST

static void expect_read_fail(const char *path, mk_err code, const char *needle)
{
    char *text = (char *)"untouched";
    size_t len = 7;
    ck_assert_int_eq(mk_read_text_file(path, &text, &len), code);
    ck_assert_ptr_null(text);
    ck_assert_uint_eq(len, 0);
    ck_assert_msg(strstr(mk_errmsg(), path), "'%s' does not name %s", mk_errmsg(), path);
    ck_assert_msg(strstr(mk_errmsg(), needle), "'%s' lacks '%s'", mk_errmsg(), needle);
}

START_TEST(read_file_errors)
{
    char *dir = tu_tmpdir(), *path = tu_path(dir, "bad.yaml"), *missing = tu_path(dir, "none.yaml");
    expect_read_fail(missing, MK_EIO, strerror(ENOENT));
    ck_assert_ptr_nonnull(strstr(mk_errmsg(), "cannot read config '"));
    expect_read_fail(dir, MK_EIO, strerror(EISDIR));
    write_bytes(path, "output: o\n\0junk", 15);
    expect_read_fail(path, MK_ECONFIG, "NUL byte (at offset 10)");
    size_t big = ((size_t)16 << 20) + 1;
    char *data = malloc(big);
    memset(data, '#', big);
    write_bytes(path, data, big);
    expect_read_fail(path, MK_ECONFIG, "larger than 16 MiB");
    write_bytes(path, data, big - 1); /* exactly the limit is fine */
    char *text;
    size_t len;
    ck_assert_int_eq(mk_read_text_file(path, &text, &len), MK_OK);
    ck_assert_uint_eq(len, big - 1);
    free(text);
    free(data);
    tu_rmrf(dir);
    free(missing);
    free(path);
    free(dir);
}
END_TEST

START_TEST(free_is_safe)
{
    mk_config cfg;
    memset(&cfg, 0, sizeof cfg);
    mk_config_free(&cfg);
    ck_assert(is_zeroed(&cfg));
    mk_config_free(NULL);
    parse_ok(minimal, NULL, 0, &cfg);
    mk_config_free(&cfg);
    ck_assert(is_zeroed(&cfg));
    mk_config_free(&cfg); /* twice is harmless */
    ck_assert(is_zeroed(&cfg));
}
END_TEST

/* ----------------------------------------------------------- models --- */

START_TEST(models_list)
{
    const char *yaml = "models:\n"
                       "  - file: acts/seed0.h5\n"
                       "    layers: [\"layer*\"]\n"
                       "  - {file: [acts/s1-0-of-2.h5, acts/s1-1-of-2.h5], name: \"seed 1\", layers: [a, b]}\n"
                       "  - file: acts/seed2.h5\n"
                       "    name: third\n"
                       "    layers: fc\n"
                       "output: o\n"
                       "ids: false\n";
    mk_config cfg;
    parse_ok(yaml, NULL, 0, &cfg);
    ck_assert_int_eq(cfg.nmodels, 3);
    ck_assert_int_eq(mk_config_nmodels(&cfg), 3);
    ck_assert_int_eq(cfg.has_x, 0);
    ck_assert_str_eq(cfg.models[0].name, "seed0"); /* the default, as for x */
    ck_assert_str_eq(cfg.models[1].name, "seed 1");
    ck_assert_int_eq(cfg.models[1].nfiles, 2);
    ck_assert_int_eq(cfg.models[1].nlayers, 2);
    ck_assert_str_eq(cfg.models[2].layers[0], "fc");
    ck_assert_ptr_eq(mk_config_model(&cfg, 2), &cfg.models[2]);
    ck_assert_int_eq(cfg.models[2].check_ids, 0); /* top-level keys reach every model */
    ck_assert_ptr_nonnull(strstr(cfg.resolved, "models:\n  - file: \"acts/seed0.h5\"\n    name: \"seed0\"\n"
                                               "    layers: [\"layer*\"]\n  - file: [\"acts/s1-0-of-2.h5\""));
    assert_round_trip(&cfg);
    mk_config_free(&cfg);
    /* two models given as x and y count as two, in that order */
    parse_ok(minimal, NULL, 0, &cfg);
    ck_assert_int_eq(mk_config_nmodels(&cfg), 1);
    ck_assert_ptr_eq(mk_config_model(&cfg, 0), &cfg.x);
    mk_config_free(&cfg);
    char *set[] = {"models=[{file: a.h5, layers: [l1]}, {file: b.h5, layers: [l1, l2]}]"};
    parse_ok("output: o\n", set, 1, &cfg);
    ck_assert_int_eq(cfg.nmodels, 2);
    ck_assert_str_eq(cfg.models[1].name, "b");
    mk_config_free(&cfg);
}
END_TEST

START_TEST(models_errors)
{
    EXPECT_FAIL("models: []\noutput: o\n", MK_ECONFIG, "run.yaml:1: 'models' must be a list of models", "an empty list");
    EXPECT_FAIL("models: {file: a.h5}\noutput: o\n", MK_ECONFIG, "'models' must be a list", "got a mapping");
    EXPECT_FAIL("models: [a.h5]\noutput: o\n", MK_ECONFIG, "'models[0]' must be a mapping", "a single value");
    EXPECT_FAIL("models:\n  - file: a.h5\n    layers: [l]\n  - layers: [l]\noutput: o\n", MK_ECONFIG,
                "run.yaml:4: missing required key 'models[1].file'");
    EXPECT_FAIL("models:\n  - file: a.h5\noutput: o\n", MK_ECONFIG, "missing required key 'models[0].layers'");
    EXPECT_FAIL("models:\n  - file: a.h5\n    layer: [l]\noutput: o\n", MK_ECONFIG,
                "run.yaml:3: unknown key 'models[0].layer'", "did you mean 'layers'?");
    EXPECT_FAIL("models:\n  - file: a.h5\n    layers: [l]\n    file: b.h5\noutput: o\n", MK_ECONFIG,
                "duplicate key 'models[0].file'");
    EXPECT_FAIL("models:\n  - {file: a.h5, layers: [l], name: ~}\noutput: o\n", MK_ECONFIG,
                "'models[0].name' has no value");
    EXPECT_FAIL("models:\n  - {file: a.h5, layers: [[l]]}\noutput: o\n", MK_ECONFIG,
                "'models[0].layers' must be a list of strings");
    EXPECT_FAIL("models:\n  - {file: run/a.h5, layers: [l]}\n  - {file: b/a.h5, layers: [l]}\noutput: o\n",
                MK_ECONFIG, "run.yaml:3: models[0] and models[1] are both named 'a'", "key 'name'");
    EXPECT_FAIL("models:\n  - {file: a.h5, layers: [l]}\nx: {file: b.h5, layers: [l]}\noutput: o\n", MK_ECONFIG,
                "run.yaml:1: 'models' and x/y are two ways");
    EXPECT_FAIL("models:\n  - {file: a.h5, layers: [l]}\ny: {file: b.h5, layers: [l]}\noutput: o\n", MK_ECONFIG,
                "'models' and x/y are two ways");
    EXPECT_FAIL("output: o\n", MK_ECONFIG, "missing required key 'x' (or a 'models' list)");
}
END_TEST

START_TEST(null_source_named)
{
    mk_config cfg;
    ck_assert_int_eq(mk_config_parse("epochs: 1\n", 10, NULL, NULL, 0, &cfg), MK_ECONFIG);
    ck_assert_ptr_nonnull(strstr(mk_errmsg(), "<config>: missing required key 'x'"));
}
END_TEST

START_TEST(reference)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    ck_assert_ptr_nonnull(f);
    mk_config_print_reference(f);
    ck_assert_int_eq(fclose(f), 0);
    static const char *const keys[] = {"x", "x.file", "x.name", "x.layers", "y", "y.file", "y.name",
                                       "y.layers", "batch_size", "epochs", "shuffle", "seed",
                                       "precision", "output"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char line[64];
        snprintf(line, sizeof line, "\n  %s ", keys[i]);
        ck_assert_msg(strstr(buf, line), "reference lacks key %s:\n%s", keys[i], buf);
    }
    static const char *const facts[] = {"integer >= 4", "default: 256", "default: float64",
                                        "one of float32, float64", "default: base name of x.file",
                                        "required in y", "default: false", "list of strings"};
    for (size_t i = 0; i < sizeof facts / sizeof facts[0]; i++)
        ck_assert_msg(strstr(buf, facts[i]), "reference lacks '%s':\n%s", facts[i], buf);
    free(buf);
}
END_TEST

/* configs/reference.yaml shows every key (as "leaf:" under its section). */
START_TEST(reference_yaml_lists_every_key)
{
    char path[1024], *text, *buf = NULL;
    size_t len, size = 0;
    snprintf(path, sizeof path, "%s/configs/reference.yaml", MK_TEST_SOURCE_DIR);
    ck_assert_int_eq(mk_read_text_file(path, &text, &len), MK_OK);
    FILE *f = open_memstream(&buf, &size);
    mk_config_print_reference(f);
    fclose(f);
    int keys = 0;
    for (char *line = strstr(buf, "\n  "); line; line = strstr(line + 1, "\n  ")) {
        if (line[3] == ' ') continue; /* a help line */
        char key[128], want[160];
        sscanf(line + 3, "%127s", key);
        const char *leaf = strrchr(key, '.') ? strrchr(key, '.') + 1 : key;
        snprintf(want, sizeof want, strchr(key, '.') ? "\n  %s:" : "\n%s:", leaf);
        char commented[170]; /* a key that excludes others (models) is shown commented out */
        snprintf(commented, sizeof commented, "\n# %s", want + 1);
        ck_assert_msg(strstr(text, want) || strstr(text, commented), "reference.yaml lacks '%s'", key);
        keys++;
    }
    ck_assert_int_ge(keys, 30); /* the parse of the reference found the keys */
    free(buf);
    free(text);
}
END_TEST

/* ---------------------------------------------------------------- main --- */

TU_MAIN("config", 0,
        TU_CASE("valid", NULL, NULL, 0, NULL, full_config, defaults, default_name, scalar_layers, file_lists_and_globs,
                ids_and_layer_order, slips_get_hints, first_difference, y_absent, models_list, models_errors,
                integers_accepted, booleans, seed_max, precision_values),
        TU_CASE("structure errors", NULL, NULL, 0, NULL, empty_config, not_a_mapping, malformed_yaml, unsupported_yaml,
                missing_required, unknown_keys, unknown_nested_keys, duplicate_keys),
        TU_CASE("value errors", NULL, NULL, 0, NULL, wrong_types, empty_values, integer_errors, integer_minimums, integer_maximums,
                bool_errors, seed_errors, precision_errors),
        TU_CASE("set", NULL, NULL, 0, NULL, set_scalars, set_lists, set_creates_y, set_order_and_completion, set_errors,
                set_value_message),
        TU_CASE("resolved", NULL, NULL, 0, NULL, resolved_text, resolved_escapes, resolved_limits),
        TU_CASE("files and misc", NULL, NULL, 0, NULL, read_file_ok, read_file_errors, free_is_safe, null_source_named,
                reference, shipped_configs_parse, reference_yaml_lists_every_key, plot_defaults_on,
                plot_section_values_and_off, plot_errors, estimator_keys, estimator_errors))
