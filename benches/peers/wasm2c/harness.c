/*
 * The codegen comparison's wasm -> C -> native side: a chatflow bench
 * guest translated by wasm2c (guest.c / guest.h, module name `guest`) and
 * compiled by a C compiler, run on a document with the least host the
 * guest needs (`property_get` of "API Response", `property_set` of
 * "summary", `fail`, `log`, `last_error`). Memory keeps guard-page bounds
 * checks, as in wasmtime; there is no fuel.
 *
 *     harness DOC RUNS
 *
 * Between runs the instance is put back as it was after instantiation
 * (its globals and the initial memory copied back, grown memory zeroed):
 * a fresh instance on warm pages, as wasmtime's pool gives. Only the call
 * of `chatflow_run` is timed, by the thread's CPU time (as on the wasmtime
 * side). Prints `MEDIAN_NS SUMMARY`.
 * Built and run by benches/peers/codegen.py.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "guest.h"

struct Z_chatflow_instance_t {
  Z_guest_instance_t* guest;
  const u8* doc;
  u32 doc_len;
  char summary[4096];
  u32 summary_len;
};

static wasm_rt_memory_t* memory(struct Z_chatflow_instance_t* h) {
  return Z_guestZ_memory(h->guest);
}

static u8* span(struct Z_chatflow_instance_t* h, u32 ptr, u32 len) {
  wasm_rt_memory_t* m = memory(h);
  if ((u64)ptr + len > m->size) {
    fprintf(stderr, "guest pointer out of bounds\n");
    exit(2);
  }
  return m->data + ptr;
}

static const char API_RESPONSE[] = "API Response";

u32 Z_chatflowZ_property_get(struct Z_chatflow_instance_t* h, u32 np, u32 nl, u32 bp, u32 cap) {
  const u8* name = span(h, np, nl);
  if (nl != sizeof API_RESPONSE - 1 || memcmp(name, API_RESPONSE, nl) != 0) return (u32)-1;
  u32 n = h->doc_len < cap ? h->doc_len : cap;
  memcpy(span(h, bp, n), h->doc, n);
  return h->doc_len;
}

u32 Z_chatflowZ_property_set(struct Z_chatflow_instance_t* h, u32 np, u32 nl, u32 vp, u32 vl) {
  const u8* name = span(h, np, nl);
  const u8* value = span(h, vp, vl);
  if (nl == 7 && memcmp(name, "summary", 7) == 0 && vl < sizeof h->summary) {
    memcpy(h->summary, value, vl);
    h->summary_len = vl;
  }
  return 0;
}

void Z_chatflowZ_fail(struct Z_chatflow_instance_t* h, u32 ptr, u32 len) {
  fprintf(stderr, "guest failed: %.*s\n", (int)len, (const char*)span(h, ptr, len));
}

void Z_chatflowZ_log(struct Z_chatflow_instance_t* h, u32 level, u32 ptr, u32 len) {
  (void)h; (void)level; (void)ptr; (void)len;
}

u32 Z_chatflowZ_last_error(struct Z_chatflow_instance_t* h, u32 ptr, u32 cap) {
  (void)h; (void)ptr; (void)cap;
  return (u32)-1;
}

static int cmp(const void* a, const void* b) {
  u64 x = *(const u64*)a, y = *(const u64*)b;
  return x < y ? -1 : x > y;
}

static u64 now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (u64)t.tv_sec * 1000000000u + (u64)t.tv_nsec;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s DOC RUNS\n", argv[0]);
    return 2;
  }
  FILE* f = fopen(argv[1], "rb");
  if (!f) { perror(argv[1]); return 2; }
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  u8* doc = malloc(len);
  if (fread(doc, 1, len, f) != (size_t)len) { perror("read"); return 2; }
  fclose(f);
  int runs = atoi(argv[2]);

  wasm_rt_init();
  Z_guest_init_module();
  static Z_guest_instance_t guest;
  static struct Z_chatflow_instance_t host;
  host.guest = &guest;
  host.doc = doc;
  host.doc_len = (u32)len;
  Z_guest_instantiate(&guest, &host);

  /* The instance as instantiated: globals and the initial memory. */
  static Z_guest_instance_t initial;
  initial = guest;
  wasm_rt_memory_t* m = memory(&host);
  u64 initial_size = m->size;
  u64 initial_pages = m->pages;
  u8* image = malloc(initial_size);
  memcpy(image, m->data, initial_size);

  u64* times = malloc(sizeof(u64) * (runs > 0 ? runs : 1));
  for (int r = 0; r < runs; r++) {
    u64 used = m->size;
    memcpy(m->data, image, initial_size);
    if (used > initial_size) memset(m->data + initial_size, 0, used - initial_size);
    wasm_rt_memory_t grown = *m;
    guest = initial;
    /* Keep the mapping, forget the growth (a later memory.grow maps it
       again, as in a fresh instance). */
    *memory(&host) = grown;
    memory(&host)->pages = initial_pages;
    memory(&host)->size = initial_size;
    host.summary_len = 0;
    u64 t0 = now_ns();
    u32 code = Z_guestZ_chatflow_run(&guest);
    times[r] = now_ns() - t0;
    if (code != 0) {
      fprintf(stderr, "chatflow_run returned %u\n", code);
      return 1;
    }
  }
  qsort(times, runs, sizeof(u64), cmp);
  printf("%llu %.*s\n", (unsigned long long)times[runs / 2], (int)host.summary_len, host.summary);
  Z_guest_free(&guest);
  wasm_rt_free();
  return 0;
}
