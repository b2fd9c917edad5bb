// gbench.cpp — the extern "C" shim over Google Benchmark declared in gbench.h.
//
// Each registration is a slot (function, context, warm-up count, counters, last result); the
// lambda handed to benchmark::RegisterBenchmark runs the warm-up once, then one call of the C
// function per iteration, feeding its measured seconds to SetIterationTime (UseManualTime), and
// records what it measured in the slot so C callers get the numbers without parsing output.
// Only API common to libbenchmark 1.7 and 1.8 is used (RegisterBenchmark with a lambda,
// SkipWithError(const char*), Counter, Initialize/ReportUnrecognizedArguments).
#include "gbench.h"

#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace {

struct slot {
    std::string name;
    lc_gb_fn fn;
    void *ctx;
    int warmup;
    bool warmed;
    std::vector<std::pair<std::string, double>> counters;
    struct lc_gb_result result;
};

// The registrations live as long as Google Benchmark's own registry, which is global too.
std::vector<slot> &slots() {
    static std::vector<slot> s;
    return s;
}

void run_slot(benchmark::State &state, int id) {
    slot *s = &slots()[id];
    struct lc_gb_result &r = s->result;
    r.runs++;
    double total = 0;
    int64_t iters = 0;
    if (!s->warmed) {
        s->warmed = true;
        for (int i = 0; i < s->warmup; i++) {
            double sec = 0;
            if (s->fn(s->ctx, &sec) != LC_OK) {
                r.skipped = 1;
                std::snprintf(r.message, sizeof r.message, "%s", lc_last_error());
                state.SkipWithError(r.message);
                break;
            }
        }
    }
    for (auto _ : state) {
        double sec = 0;
        if (s->fn(s->ctx, &sec) != LC_OK) {
            r.skipped = 1;
            std::snprintf(r.message, sizeof r.message, "%s", lc_last_error());
            state.SkipWithError(r.message);
            break;
        }
        state.SetIterationTime(sec);
        total += sec;
        iters++;
    }
    if (r.skipped || iters == 0) return;
    r.iterations = iters;
    r.seconds_mean = total / (double)iters;
    for (auto &c : s->counters)
        if (r.seconds_mean > 0) state.counters[c.first] = benchmark::Counter(c.second / r.seconds_mean);
}

}  // namespace

extern "C" {

int lc_gb_available(void) { return 1; }

int lc_gb_register(const char *name, lc_gb_fn fn, void *ctx, int warmup) {
    if (!name || !*name || !fn) {
        lc_errorf(LC_EINVAL, "lc_gb_register: a benchmark needs a name and a function");
        return -1;
    }
    slot s;
    s.name = name;
    s.fn = fn;
    s.ctx = ctx;
    s.warmup = warmup < 0 ? 0 : warmup;
    s.warmed = false;
    std::memset(&s.result, 0, sizeof s.result);
    slots().push_back(s);
    int id = (int)slots().size() - 1;
    benchmark::RegisterBenchmark(name, [id](benchmark::State &st) { run_slot(st, id); })
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
    return id;
}

lc_status lc_gb_counter(int id, const char *name, double per_iter) {
    LC_REQUIRE(id >= 0 && id < (int)slots().size(), "lc_gb_counter: no benchmark %d", id);
    for (auto &c : slots()[id].counters)
        if (c.first == name) {
            c.second = per_iter;
            return LC_OK;
        }
    slots()[id].counters.emplace_back(name, per_iter);
    return LC_OK;
}

lc_status lc_gb_run(int argc, char **argv) {
    static char prog[] = "longctx";
    std::vector<char *> args;
    args.push_back(argc > 0 ? argv[0] : prog);
    for (int i = 1; i < argc; i++) args.push_back(argv[i]);
    args.push_back(nullptr);
    int n = (int)args.size() - 1;
    benchmark::Initialize(&n, args.data());
    if (n > 1) {
        std::string rest;
        for (int i = 1; i < n; i++) rest += std::string(" '") + args[i] + "'";
        return lc_errorf(LC_EINVAL, "unrecognized benchmark argument%s:%s (Google Benchmark flags start with "
                         "--benchmark_, e.g. --benchmark_repetitions=5)", n > 2 ? "s" : "", rest.c_str());
    }
    for (auto &s : slots()) {
        s.warmed = false;
        std::memset(&s.result, 0, sizeof s.result);
    }
    benchmark::RunSpecifiedBenchmarks();
    return LC_OK;
}

lc_status lc_gb_result(int id, struct lc_gb_result *r) {
    LC_REQUIRE(id >= 0 && id < (int)slots().size(), "lc_gb_result: no benchmark %d", id);
    *r = slots()[id].result;
    return LC_OK;
}

void lc_gb_clear(void) {
    benchmark::ClearRegisteredBenchmarks();
    slots().clear();
}

}  // extern "C"
