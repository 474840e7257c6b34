// ann_hnswlib.cpp - hnswlib (Debian's libhnswlib-dev headers, the same 0.6.2 as python3-hnswlib)
// compiled here with -O3 -march=native, so that it gets AVX-512/AVX2 distances like raftlm does;
// Debian's python module is built for baseline x86-64 (SSE only). Same measurement as
// `raftlm bench ann --json`: build with T threads, single-thread searchKnn per query for each ef
// (best of R), recall@k against gt.ivecs.
//   ann_hnswlib DATA_DIR M EFC EF1,EF2,... THREADS K REPEAT [save:FILE | load:FILE]
// (load: no build; the index file from an earlier save. For bench/ann_interleave.sh.)
#include <hnswlib/hnswlib.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_set>
#include <unistd.h>
#include <vector>

template <class T> static std::vector<T> read_vecs(const std::string &path, int &d, size_t &n) {
    std::ifstream f(path, std::ios::binary);
    std::vector<char> raw((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    memcpy(&d, raw.data(), 4);
    size_t row = 4 + (size_t)d * 4;
    n = raw.size() / row;
    std::vector<T> out(n * (size_t)d);
    for (size_t i = 0; i < n; i++) memcpy(&out[i * d], raw.data() + i * row + 4, (size_t)d * 4);
    return out;
}

static long rss_bytes() {
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
        fclose(f);
    }
    return rss * sysconf(_SC_PAGESIZE);
}

static double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
static double cpu() {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc < 8) {
        fprintf(stderr, "usage: ann_hnswlib DATA_DIR M EFC EFS THREADS K REPEAT [save:FILE|load:FILE]\n");
        return 2;
    }
    std::string dir = argv[1];
    int M = atoi(argv[2]), efc = atoi(argv[3]), threads = atoi(argv[5]), k = atoi(argv[6]), repeat = atoi(argv[7]);
    std::vector<int> efs;
    std::stringstream ss(argv[4]);
    for (std::string t; std::getline(ss, t, ',');) efs.push_back(atoi(t.c_str()));
    std::string metric;
    std::ifstream(dir + "/meta") >> metric;
    int d, dq, dg;
    size_t n, nq, ng;
    auto base = read_vecs<float>(dir + "/base.fvecs", d, n);
    auto query = read_vecs<float>(dir + "/query.fvecs", dq, nq);
    auto gt = read_vecs<int>(dir + "/gt.ivecs", dg, ng);
    if (metric == "cosine") {
        for (auto *v : {&base, &query})
            for (size_t i = 0; i < v->size() / d; i++) {
                float s = 0;
                for (int j = 0; j < d; j++) s += (*v)[i * d + j] * (*v)[i * d + j];
                s = 1.0f / std::sqrt(s);
                for (int j = 0; j < d; j++) (*v)[i * d + j] *= s;
            }
    }
    hnswlib::SpaceInterface<float> *space;
    if (metric == "l2") space = new hnswlib::L2Space(d);
    else space = new hnswlib::InnerProductSpace(d);
    std::string extra = argc > 8 ? argv[8] : "";
    long r0 = rss_bytes();
    double t0 = now();
    hnswlib::HierarchicalNSW<float> *index;
    if (extra.rfind("load:", 0) == 0) {
        index = new hnswlib::HierarchicalNSW<float>(space, extra.substr(5));
    } else {
        index = new hnswlib::HierarchicalNSW<float>(space, n, M, efc, 42);
        index->addPoint(&base[0], 0);
        std::atomic<size_t> next(1);
        std::vector<std::thread> pool;
        for (int t = 0; t < threads; t++)
            pool.emplace_back([&] {
                for (size_t i; (i = next++) < n;) index->addPoint(&base[i * d], i);
            });
        for (auto &t : pool) t.join();
    }
    double build = now() - t0;
    if (extra.rfind("save:", 0) == 0) index->saveIndex(extra.substr(5));
    long r1 = rss_bytes();
    printf("{\n  \"engine\": \"hnswlib_native\", \"n_base\": %zu, \"n_query\": %zu, \"dim\": %d, \"metric\": \"%s\",\n"
           "  \"M\": %d, \"ef_construction\": %d, \"k\": %d, \"threads\": %d, \"build_s\": %.3f, \"rss_delta_bytes\": %ld,\n"
           "  \"runs\": [",
           n, nq, d, metric.c_str(), M, efc, k, threads, build, r1 - r0);
    for (size_t e = 0; e < efs.size(); e++) {
        index->setEf(efs[e]);
        double best = 1e300, best_cpu = 1e300;
        size_t found = 0;
        for (int r = 0; r < repeat; r++) {
            found = 0;
            double c0 = cpu(), w0 = now();
            for (size_t i = 0; i < nq; i++) {
                auto res = index->searchKnn(&query[i * d], k);
                std::unordered_set<int> g(&gt[i * dg], &gt[i * dg] + k);
                while (!res.empty()) {
                    found += g.count((int)res.top().second);
                    res.pop();
                }
            }
            best = std::min(best, now() - w0);
            best_cpu = std::min(best_cpu, cpu() - c0);
        }
        printf("%s\n    {\"ef\": %d, \"recall\": %.5f, \"qps\": %.1f, \"qps_cpu\": %.1f}", e ? "," : "", efs[e],
               (double)found / (nq * k), nq / best, nq / best_cpu);
    }
    printf("\n  ]\n}\n");
    delete index;
    delete space;
    return 0;
}
