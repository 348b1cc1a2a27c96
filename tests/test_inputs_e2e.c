/* End to end, the inputs a real export produces: x sharded over several
 * files (a glob or a list) gives bitwise the matrix of the same data in one
 * file, on 1 and 3 ranks, with shuffled batches straddling the shards, and
 * the oracle's numbers; sample IDs that differ stop the run (exit 3, no
 * output); globs follow a file's creation order; and the first run's
 * stumbles each get their message and exit status. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mpicka/plan.h"
#include "oracle.h"
#include "testutil.h"

#define N 203
#define NX 3
#define NY 2

static const char *x_names[NX] = {"conv1", "block/fc", "relu"};
static const int64_t x_p[NX] = {5, 6, 4};
static const char *y_names[NY] = {"enc/a", "enc/b"};
static const int64_t y_p[NY] = {3, 7};
static const int64_t cuts[4] = {0, 70, 130, N}; /* three shards */

static char *in_dir(const char *name) { return tu_path(tu_dir, name); }

/* Rows [lo, hi) of an n-by-p layer as dataset `name` of file `file` in dir. */
static void write_part(const char *file, const char *name, hid_t type, const double *data, int64_t p, int64_t lo,
                       int64_t hi)
{
    char *path = in_dir(file);
    hsize_t dims[2] = {(hsize_t)(hi - lo), (hsize_t)p};
    tu_write_dataset(path, name, type, 2, dims, data + lo * p);
    free(path);
}

static void write_ids(const char *file, hid_t type, const double *ids, int64_t lo, int64_t hi)
{
    char *path = in_dir(file);
    hsize_t dim = (hsize_t)(hi - lo);
    tu_write_dataset(path, "ids", type, 1, &dim, ids + lo);
    free(path);
}

/* x.h5 whole and x-K-of-3.h5 in shards, the same values; y.h5 related to x;
 * y_perm.h5 with two IDs swapped; y_noids.h5 without IDs. */
static void make_inputs(void)
{
    tu_dir_setup();
    uint64_t rng = 11;
    double *x[NX], *y[NY], ids[N];
    for (int i = 0; i < N; i++) ids[i] = 5000 + i;
    for (int l = 0; l < NX; l++) {
        x[l] = malloc((size_t)(N * x_p[l]) * sizeof(double));
        for (int64_t k = 0; k < N * x_p[l]; k++) x[l][k] = tu_normal(&rng) + 3.0;
        write_part("x.h5", x_names[l], l == 1 ? H5T_IEEE_F64LE : H5T_IEEE_F32LE, x[l], x_p[l], 0, N);
        for (int f = 0; f < 3; f++) {
            char name[32];
            snprintf(name, sizeof name, "x-%d-of-3.h5", f);
            write_part(name, x_names[l], l == 1 ? H5T_IEEE_F64LE : H5T_IEEE_F32LE, x[l], x_p[l], cuts[f], cuts[f + 1]);
        }
    }
    for (int l = 0; l < NY; l++) {
        y[l] = malloc((size_t)(N * y_p[l]) * sizeof(double));
        for (int64_t i = 0; i < N; i++)
            for (int64_t f = 0; f < y_p[l]; f++)
                y[l][i * y_p[l] + f] = x[0][i * x_p[0] + f % x_p[0]] * (l + 1) + 0.5 * tu_normal(&rng);
        write_part("y.h5", y_names[l], H5T_IEEE_F32LE, y[l], y_p[l], 0, N);
        write_part("y_perm.h5", y_names[l], H5T_IEEE_F32LE, y[l], y_p[l], 0, N);
        write_part("y_noids.h5", y_names[l], H5T_IEEE_F32LE, y[l], y_p[l], 0, N);
    }
    write_ids("x.h5", H5T_STD_I64LE, ids, 0, N);
    for (int f = 0; f < 3; f++) {
        char name[32];
        snprintf(name, sizeof name, "x-%d-of-3.h5", f);
        write_ids(name, H5T_STD_I64LE, ids, cuts[f], cuts[f + 1]);
    }
    write_ids("y.h5", H5T_STD_U32LE, ids, 0, N); /* another width: compared as numbers written out */
    ids[150] = 5151, ids[151] = 5150;
    write_ids("y_perm.h5", H5T_STD_I64LE, ids, 0, N);
    for (int l = 0; l < NX; l++) free(x[l]);
    for (int l = 0; l < NY; l++) free(y[l]);
}

static int check_config(const char *config, const char *extra, char **out)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cd '%s' && %s check %s %s", tu_dir, MK_TEST_EXE, config, extra ? extra : "");
    return tu_run(cmd, out);
}

static void read_cka(const char *outdir, double *cka)
{
    char *sub = in_dir(outdir), *h5 = tu_path(sub, "cka.h5");
    ck_assert_int_eq(tu_read_doubles(h5, "cka", cka, NX * NY), NX * NY);
    free(h5);
    free(sub);
}

static void must_run(int np, const char *config, const char *extra)
{
    char *out;
    int status = tu_run_config(np, config, extra, &out);
    ck_assert_msg(status == 0, "np=%d %s %s: exit %d: %s", np, config, extra ? extra : "", status, out);
    free(out);
}

/* Shards, as a glob on 1 rank and as a list on 3, against the whole file,
 * shuffled: bitwise the same /cka, and the oracle's within 1e-9. */
START_TEST(shards_give_the_same_bits)
{
    const char *tail = "y:\n  file: y.h5\n  layers: [\"enc/*\"]\nbatch_size: 32\nshuffle: true\nseed: 5\n"
                       "precision: float64\nplot: false\noutput: unused\n";
    char text[1024];
    snprintf(text, sizeof text, "x:\n  file: \"x-*-of-3.h5\"\n  layers: [conv1, \"block/*\", relu]\n%s", tail);
    tu_write_config("glob.yaml", text);
    snprintf(text, sizeof text, "x:\n  file: [x-0-of-3.h5, x-1-of-3.h5, x-2-of-3.h5]\n"
                                "  layers: [conv1, \"block/*\", relu]\n%s", tail);
    tu_write_config("list.yaml", text);
    snprintf(text, sizeof text, "x:\n  file: x.h5\n  layers: [conv1, \"block/*\", relu]\n%s", tail);
    tu_write_config("whole.yaml", text);
    must_run(1, "glob.yaml", "--set output=glob1");
    must_run(3, "list.yaml", "--set output=list3");
    must_run(1, "whole.yaml", "--set output=whole1");
    double whole[NX * NY], other[NX * NY];
    read_cka("whole1", whole);
    const char *outs[] = {"glob1", "list3"};
    for (int k = 0; k < 2; k++) {
        read_cka(outs[k], other);
        ck_assert_msg(memcmp(whole, other, sizeof whole) == 0, "%s differs from the unsharded run", outs[k]);
    }
    char *h5 = in_dir("glob1/cka.h5");
    ck_assert_int_eq(tu_read_int_attr(h5, "n"), N);
    char *name = tu_read_str_attr(h5, "x_name"), *file = tu_read_str_attr(h5, "x_file");
    ck_assert_str_eq(name, "x"); /* the shard suffix and the wildcard are not part of the name */
    ck_assert_str_eq(file, "x-*-of-3.h5");
    free(name), free(file), free(h5);
    /* the oracle, from the whole file, on the plan's shuffled batches */
    oracle_layer x[NX], y[NY];
    char *xf = in_dir("x.h5"), *yf = in_dir("y.h5");
    for (int l = 0; l < NX; l++) ck_assert_int_eq(oracle_read_layer(xf, x_names[l], &x[l]), N);
    for (int l = 0; l < NY; l++) ck_assert_int_eq(oracle_read_layer(yf, y_names[l], &y[l]), N);
    mk_plan plan;
    ck_assert_int_eq(mk_plan_init(&plan, N, 32, 1, 1, 5), MK_OK);
    int64_t *rows[16], sizes[16];
    ck_assert_int_eq(plan.total, 7);
    for (int64_t g = 0; g < plan.total; g++) {
        sizes[g] = mk_plan_batch_size(&plan, g);
        rows[g] = malloc((size_t)sizes[g] * sizeof(int64_t));
        mk_plan_batch_rows(&plan, g, rows[g]);
    }
    double ref[NX * NY];
    oracle_minibatch_cka(x, NX, y, NY, plan.total, (const int64_t *const *)rows, sizes, ref);
    for (int k = 0; k < NX * NY; k++)
        ck_assert_msg(fabs(whole[k] - ref[k]) <= 1e-9, "cka[%d] = %.17g, oracle %.17g", k, whole[k], ref[k]);
    ck_assert(ref[0] > 0.3); /* related layers: a check that means something */
    for (int64_t g = 0; g < plan.total; g++) free(rows[g]);
    for (int l = 0; l < NX; l++) free(x[l].data);
    for (int l = 0; l < NY; l++) free(y[l].data);
    free(xf), free(yf);
    /* check lists the shards */
    char *out;
    tu_assert_exit(check_config("glob.yaml", NULL, &out), 0);
    ck_assert_msg(strstr(out, "3 shards, concatenated in this order:") && strstr(out, "x-1-of-3.h5: n = 60") &&
                      strstr(out, "sample IDs: 'ids'"), "%s", out);
    free(out);
}
END_TEST

/* y's IDs swapped at examples 150 and 151: exit 3 naming the example, both
 * IDs and both files (the shard for x), and no output folder. */
START_TEST(different_ids_stop_the_run)
{
    tu_write_config("perm.yaml", "x:\n  file: \"x-*-of-3.h5\"\n  layers: [conv1, relu]\n"
                    "y:\n  file: y_perm.h5\n  layers: [\"enc/*\"]\nbatch_size: 32\nshuffle: true\n"
                    "plot: false\noutput: permout\n");
    for (int np = 3; np <= 3; np++) {
        char *out;
        int status = tu_run_config(np, "perm.yaml", NULL, &out);
        ck_assert_msg(status == 3, "np=%d: exit %d: %s", np, status, out);
        ck_assert_msg(tu_count(out, "x and y hold different samples: example 150 is '5150' in x-2-of-3.h5 but "
                                    "'5151' in y_perm.h5") == 1, "%s", out);
        char *folder = in_dir("permout");
        ck_assert_msg(!tu_exists(folder), "output left behind: %s", out);
        free(folder);
        free(out);
    }
    must_run(1, "perm.yaml", "--set ids=false --quiet");
    char *out;
    tu_assert_exit(tu_run_config(1, "perm.yaml", "--set y.file=y_noids.h5 --set output=noids --quiet", &out), 0);
    tu_assert_count(out, "has sample IDs ('ids') but y_noids.h5 has none", 1);
    free(out);
}
END_TEST

/* A file that tracks creation order: "*" gives the network's order, not the
 * names', and never the IDs; check says which order it used. */
START_TEST(globs_in_creation_order)
{
    char *path = in_dir("net.h5");
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    H5Pset_link_creation_order(fcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
    H5Fclose(H5Fcreate(path, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT));
    H5Pclose(fcpl);
    free(path);
    const char *net[] = {"conv1", "bn1", "layer1.0", "layer1.1", "layer2.0", "fc", "avgpool"};
    double data[40 * 3], ids[40];
    uint64_t rng = 3;
    for (int l = 0; l < 7; l++) {
        for (int k = 0; k < 120; k++) data[k] = tu_normal(&rng);
        write_part("net.h5", net[l], H5T_IEEE_F32LE, data, 3, 0, 40);
    }
    for (int i = 0; i < 40; i++) ids[i] = i;
    write_ids("net.h5", H5T_STD_I32LE, ids, 0, 40);
    tu_write_config("net.yaml", "x:\n  file: net.h5\n  layers: \"*\"\nbatch_size: 10\nplot: false\noutput: netout\n");
    must_run(1, "net.yaml", "--quiet");
    char *p = in_dir("netout/cka.csv"), line[256];
    FILE *f = fopen(p, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
    ck_assert_str_eq(line, "layer,conv1,bn1,layer1.0,layer1.1,layer2.0,fc,avgpool\n");
    fclose(f);
    free(p);
    char *out;
    tu_assert_exit(check_config("net.yaml", NULL, &out), 0);
    ck_assert_msg(strstr(out, "layer order of globs: creation"), "%s", out);
    free(out);
    /* natural order, as check lists the layers */
    tu_assert_exit(check_config("net.yaml", "--set layer_order=natural", &out), 0);
    ck_assert_msg(strstr(out, "layer order of globs: natural"), "%s", out);
    const char *natural[] = {"avgpool", "bn1", "conv1", "fc", "layer1.0", "layer1.1", "layer2.0"};
    const char *at = out;
    for (int l = 0; l < 7; l++) {
        char want[64];
        snprintf(want, sizeof want, "\n    %s ", natural[l]);
        const char *next = strstr(at, want);
        ck_assert_msg(next != NULL, "'%s' not in natural order: %s", natural[l], out);
        at = next + 1;
    }
    tu_assert_lacks(out, "\n    ids ");
    free(out);
}
END_TEST

/* An output folder holding another config's results is refused (exit 2,
 * naming the first difference) and left as it was; the same config reruns;
 * --force overwrites. */
START_TEST(output_of_another_config)
{
    tu_write_config("out.yaml", "x:\n  file: x.h5\n  layers: [conv1, relu]\nbatch_size: 32\nplot: false\n"
                    "output: kept\n");
    must_run(1, "out.yaml", "--quiet");
    must_run(1, "out.yaml", "--quiet --set output=./kept"); /* a rerun: only the output line differs */
    char *out;
    tu_assert_exit(tu_run_config(1, "out.yaml", "--quiet --set batch_size=16", &out), 2);
    ck_assert_msg(tu_count(out, "output folder 'kept' holds the results of another configuration (it has "
                                "'batch_size: 32', this run 'batch_size: 16'); choose another output folder, or "
                                "pass --force") == 1, "%s", out);
    free(out);
    char *h5 = in_dir("kept/cka.h5");
    ck_assert_int_eq(tu_read_int_attr(h5, "batch_size"), 32);
    must_run(1, "out.yaml", "--quiet --set batch_size=16 --force");
    ck_assert_int_eq(tu_read_int_attr(h5, "batch_size"), 16);
    free(h5);
}
END_TEST

/* The checkpoint's fingerprint covers every shard: a run stopped by a NaN in
 * its fifth batch leaves its checkpoint in a folder it did not create; once
 * a middle shard changes, the rerun refuses that checkpoint, naming it. */
START_TEST(fingerprint_covers_every_shard)
{
    double bad[N * 2];
    for (int k = 0; k < N * 2; k++) bad[k] = (double)((k * 7) % 5);
    bad[150 * 2 + 1] = NAN;
    for (int f = 0; f < 3; f++) {
        char from[32], to[32], cmd[512];
        snprintf(from, sizeof from, "x-%d-of-3.h5", f);
        snprintf(to, sizeof to, "n-%d-of-3.h5", f);
        snprintf(cmd, sizeof cmd, "cd '%s' && cp %s %s", tu_dir, from, to);
        tu_must_run(cmd);
        write_part(to, "bad", H5T_IEEE_F64LE, bad, 2, cuts[f], cuts[f + 1]);
    }
    char *folder = in_dir("ckout");
    ck_assert_int_eq(mkdir(folder, 0777), 0);
    tu_write_config("ck.yaml", "x:\n  file: \"n-*-of-3.h5\"\n  layers: [conv1, bad]\nbatch_size: 32\n"
                    "checkpoint:\n  every: 1\nplot: false\noutput: ckout\n");
    char *out;
    tu_assert_exit(tu_run_config(1, "ck.yaml", "--quiet", &out), 3);
    ck_assert_msg(tu_count(out, "n-2-of-3.h5: dataset 'bad' holds NaN or Inf at example 150") == 1, "%s", out);
    free(out);
    char *ck = tu_path(folder, "checkpoint.h5");
    ck_assert_msg(tu_exists(ck), "no checkpoint before the failing batch");
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cd '%s' && touch -d '2001-02-03 04:05:06' n-1-of-3.h5", tu_dir);
    tu_must_run(cmd);
    tu_assert_exit(tu_run_config(1, "ck.yaml", "--quiet", &out), 2);
    ck_assert_msg(tu_count(out, "was made by another configuration or other inputs (input 'n-1-of-3.h5' has changed "
                                "since the checkpoint: its modification time)") == 1, "%s", out);
    free(out);
    free(ck);
    free(folder);
}
END_TEST

static void expect_exit(int np, const char *config_text, const char *extra, int status, const char *message)
{
    tu_write_config("slip.yaml", config_text);
    char *out;
    int got = tu_run_config(np, "slip.yaml", extra, &out);
    ck_assert_msg(got == status, "exit %d, expected %d: %s", got, status, out);
    ck_assert_msg(tu_count(out, message) == 1, "'%s' not printed once in: %s", message, out);
    char *folder = in_dir("slipout");
    ck_assert_msg(!tu_exists(folder), "output left behind: %s", out);
    free(folder);
    free(out);
}

/* The same with `mpicka check` (one process: the slips are caught before any
 * MPI work, by the code run shares). */
static void expect_check_exit(const char *config_text, const char *extra, int status, const char *message)
{
    tu_write_config("slip.yaml", config_text);
    char *out;
    int got = check_config("slip.yaml", extra, &out);
    ck_assert_msg(got == status, "exit %d, expected %d: %s", got, status, out);
    ck_assert_msg(tu_count(out, message) == 1, "'%s' not printed once in: %s", message, out);
    free(out);
}

START_TEST(first_run_stumbles)
{
    const char *ok = "x:\n  file: x.h5\n  layers: [conv1]\noutput: slipout\n";
    expect_exit(1, ok, "--set batch_size=500", 2,
                "batch_size 500 is larger than n = 203, the examples in x.h5; set batch_size to at most 203");
    expect_exit(1, ok, "--set batch_size 50", 2, "--set batch_size 50: write --set batch_size=50");
    expect_check_exit("x:\n  file: x.h5\n  layers: *\noutput: slipout\n", NULL, 2, "quote glob patterns");
    expect_check_exit("x:\n  file: x.h5\n  layers: [*]\noutput: slipout\n", NULL, 2, "quote glob patterns");
    expect_check_exit("x:\n\tfile: x.h5\n\tlayers: [conv1]\noutput: slipout\n", NULL, 2, "YAML indents with spaces");
    expect_check_exit("x:\n  file: x.h5\n  layers: [conv]\noutput: slipout\n", NULL, 3,
                      "x.h5: no dataset 'conv' (closest: 'conv1'");
    char cmd[1024], *out;
    snprintf(cmd, sizeof cmd, "cd '%s' && %s check slip.yaml --set batch_size 50", tu_dir, MK_TEST_EXE);
    tu_assert_exit(tu_run(cmd, &out), 2);
    tu_assert_count(out, "write --set batch_size=50", 1);
    free(out);
    /* more ranks than batches: a warning in check and run */
    tu_write_config("idle.yaml", "x:\n  file: x.h5\n  layers: [conv1]\nbatch_size: 100\nplot: false\noutput: idle\n");
    tu_assert_exit(check_config("idle.yaml", "-n 5", &out), 0);
    ck_assert_msg(tu_count(out, "3 of 5 ranks will be idle: there are only 2 batch(es)") == 1, "%s", out);
    free(out);
    tu_assert_exit(tu_run_config(3, "idle.yaml", "--quiet", &out), 0);
    ck_assert_msg(tu_count(out, "1 of 3 ranks will be idle") == 1, "%s", out);
    free(out);
}
END_TEST

/* check as a Slurm job would run it (env: variables set before the command,
 * every Slurm variable it reads unset first). */
static int check_env(const char *env, const char *extra, char **out)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cd '%s' && env -u SLURM_NTASKS_PER_NODE -u SLURM_TASKS_PER_NODE -u SLURM_MEM_PER_NODE "
             "%s %s check nodes.yaml %s", tu_dir, env, MK_TEST_EXE, extra);
    return tu_run(cmd, out);
}

/* check -n: ranks idle in the last step, and the ranks of a node against its
 * memory, with the source of both numbers named. 10 batches of 20. */
START_TEST(check_warns_of_idle_ranks_and_node_memory)
{
    tu_write_config("nodes.yaml", "x:\n  file: x.h5\n  layers: [conv1]\nbatch_size: 20\nplot: false\noutput: nodes\n");
    char *out;
    tu_assert_exit(check_env("", "-n 6 --node-memory 1000", &out), 0);
    ck_assert_msg(tu_count(out, "2 of 6 ranks will be idle in the last of 2 steps, 17% of the ranks' time "
                                "(10 batches on 6 ranks); 5 ranks would take as long") == 1, "%s", out);
    ck_assert_msg(tu_count(out, "(assumed: one per core of this machine; give --ranks-per-node)") == 1, "%s", out);
    ck_assert_msg(tu_count(out, "of 1000.0 GiB (--node-memory)") == 1 && !tu_count(out, "on a node need"), "%s", out);
    free(out);
    tu_assert_exit(check_env("", "-n 5 --ranks-per-node 5 --node-memory 0.01", &out), 0);
    ck_assert_msg(!tu_count(out, "idle"), "%s", out);
    ck_assert_msg(tu_count(out, "warning: 5 rank(s) on a node need about") == 1 &&
                  tu_count(out, "more than the node's 0.0 GiB (--node-memory): put fewer ranks on a node") == 1,
                  "%s", out);
    free(out);
    tu_assert_exit(check_env("SLURM_NTASKS_PER_NODE=3 SLURM_MEM_PER_NODE=40", "-n 10", &out), 0);
    ck_assert_msg(tu_count(out, "memory per node: 3 rank(s) (SLURM_NTASKS_PER_NODE) x ") == 1, "%s", out);
    ck_assert_msg(tu_count(out, "the node's 0.0 GiB (SLURM_MEM_PER_NODE, the job's memory on a node)") == 1, "%s",
                  out);
    free(out);
    tu_assert_exit(check_env("SLURM_TASKS_PER_NODE='2(x3),4'", "-n 10 --node-memory 1000", &out), 0);
    ck_assert_msg(tu_count(out, "memory per node: 4 rank(s) (SLURM_TASKS_PER_NODE, its fullest node)") == 1, "%s",
                  out);
    free(out);
    tu_assert_exit(check_env("", "-n 2 --ranks-per-node 8 --node-memory 1000", &out), 0);
    ck_assert_msg(tu_count(out, "memory per node: 2 rank(s) (--ranks-per-node)") == 1, "%s", out);
    free(out);
    tu_assert_exit(check_env("", "--node-memory 0", &out), 2);
    ck_assert_msg(tu_count(out, "check: --node-memory '0': expected a number in (0, 1e+09]") == 1, "%s", out);
    free(out);
}
END_TEST

/* The summary cuts long labels in the middle ("mo…ion"): layer names share
 * their start and differ at their end, so both are kept; a short run in
 * lines mode still ends on a 100% line. */
START_TEST(summary_labels_and_last_progress_line)
{
    double data[40 * 2];
    uint64_t rng = 9;
    const char *names[] = {"model/encoder/layer1/attention", "model/encoder/layer1/mlp_out"};
    for (int l = 0; l < 2; l++) {
        for (int k = 0; k < 80; k++) data[k] = tu_normal(&rng);
        write_part("long.h5", names[l], H5T_IEEE_F32LE, data, 2, 0, 40);
    }
    tu_write_config("long.yaml", "x:\n  file: long.h5\n  layers: [\"model/encoder/*/*\"]\nbatch_size: 4\n"
                    "progress_seconds: 1000\nplot: false\noutput: longout\n");
    char *out;
    tu_assert_exit(tu_run_config(1, "long.yaml", "--progress lines", &out), 0);
    ck_assert_msg(strstr(out, "  model/encod\xE2\x80\xA6r1/attention ") != NULL, "row label: %s", out);
    ck_assert_msg(strstr(out, "  model/encod\xE2\x80\xA6yer1/mlp_out ") != NULL, "row label: %s", out);
    ck_assert_msg(tu_count(out, " mo\xE2\x80\xA6ion") == 1 && tu_count(out, " mo\xE2\x80\xA6out") == 1,
                  "column labels: %s", out);
    ck_assert_msg(tu_count(out, "mpicka: progress: ") == 2, "%s", out);
    ck_assert_msg(tu_count(out, "mpicka: progress: 10/10 batches (100%)") == 1, "%s", out);
    free(out);
}
END_TEST

/* A matrix too wide for the summary is not printed, and the summary says where it is. */
START_TEST(summary_of_a_wide_matrix_says_where_it_is)
{
    double data[40 * 2];
    uint64_t rng = 11;
    for (int l = 0; l < 14; l++) {
        char name[32];
        snprintf(name, sizeof name, "layer%02d", l);
        for (int k = 0; k < 80; k++) data[k] = tu_normal(&rng);
        write_part("wide.h5", name, H5T_IEEE_F32LE, data, 2, 0, 40);
    }
    tu_write_config("wide.yaml", "x:\n  file: wide.h5\n  layers: [\"*\"]\nbatch_size: 4\nplot: false\noutput: wideout\n");
    char *out;
    tu_assert_exit(tu_run_config(1, "wide.yaml", "--progress none", &out), 0);
    tu_assert_count(out, "  (14 columns, too many for this summary: see wideout/cka.csv or `mpicka show wideout/cka.h5`)\n",
                    1);
    tu_assert_count(out, "  layer00 ", 0);
    free(out);
}
END_TEST

static void shared_inputs(TCase *tc)
{
    tcase_add_unchecked_fixture(tc, make_inputs, tu_dir_teardown);
}

TU_MAIN("inputs_e2e", 0,
        TU_CASE("mpirun", NULL, NULL, 300, shared_inputs, shards_give_the_same_bits, different_ids_stop_the_run,
                globs_in_creation_order, output_of_another_config, first_run_stumbles,
                check_warns_of_idle_ranks_and_node_memory, fingerprint_covers_every_shard,
                summary_labels_and_last_progress_line, summary_of_a_wide_matrix_says_where_it_is))
