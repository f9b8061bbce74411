/* The MinHash kernels of `dedup`, in C: a CPython extension module built when the package is
 * installed (setup.py; `pip install .` or `pip install -e .`), loaded by preprocessing/dedup/native.py.
 *
 * Results are bit-identical to the numpy reference in preprocessing/dedup/minhash.py (tests check
 * it): a token is a maximal run of [A-Za-z_0-9] bytes, its hash xxh64(token), an n-gram's hash
 * xxh64 of the little-endian bytes of its n token hashes, permutation k maps h to
 * ((a_k * h + b_k) mod 2**64) >> 32.
 *
 * The signatures kernel also reads contents still escaped as JSON string bodies (`escaped`): the
 * bytes after the opening quote of "content": "..." in a JSON line, up to the closing quote it
 * finds, so that pass 1 of `dedup` need not decode, re-encode and copy each file. It decodes the
 * escapes as it goes (every escape JSON has: the two-byte ones, \uXXXX in either case, surrogate
 * pairs), so the tokens and hashes are those of the decoded text: a \u escape of a letter, digit or
 * underscore is part of its token. It checks that the body is valid JSON (no raw control
 * character, no malformed escape, no lone surrogate: the readers reject those lines) and
 * well-formed UTF-8 without NUL (content no reader accepts), and reports the decoded size (-1 when
 * a check fails: the caller then decodes the line as usual), where the body ends and whether every
 * escape is one orjson.dumps writes (then the body is byte for byte orjson's).
 *
 * Pass 2 of `dedup` rewrites such a line's other fields only: `string_ends` finds where the bodies
 * end (their closing quotes) and `orjson_body` transcodes a body whose escapes are not orjson's
 * into orjson's bytes (the one call here that allocates: the bytes it returns).
 *
 * The kernels allocate nothing: the caller passes every buffer (scratch sized by
 * preprocessing.dedup._scratch.scratch_words, checked here), and they run without the GIL. Every
 * argument is checked at the boundary (buffer sizes, ranges), so a wrong call raises ValueError and
 * never reads or writes out of bounds.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the kernels read little-endian words (the numpy reference's byte order for n-grams)"
#endif

typedef uint64_t u64;
typedef uint32_t u32;
typedef uint8_t u8;

#define P1 0x9E3779B185EBCA87ULL
#define P2 0xC2B2AE3D27D4EB4FULL
#define P3 0x165667B19E3779F9ULL
#define P4 0x85EBCA77C2B2AE63ULL
#define P5 0x27D4EB2F165667C5ULL

#if defined(__GNUC__) || defined(__clang__)
#define INLINE static inline __attribute__((always_inline))
#else
#define INLINE static inline
#endif

/* The signature loops, compiled twice on x86-64 with GCC/clang: for AVX2 and for the baseline;
 * the loader picks one for the CPU. The min-reduction of the permutations has three loops of its
 * own, the best one the CPU has chosen at import (minhash_loop): x86-64-v4 (AVX-512 has a 64-bit
 * multiply, vpmullq, and an unsigned 64-bit minimum, vpminuq: the 64-bit loop vectorised 8 wide;
 * GCC 12 or later), AVX2 (32-bit halves, 8 lanes: minhash_avx2) and the baseline's. */
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && defined(__linux__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define CLONES __attribute__((target_clones("avx2", "default")))
#define MINHASH_AVX2 __attribute__((target("avx2")))
#if !defined(__clang__) && __GNUC__ >= 12 /* (__builtin_cpu_supports("x86-64-v4"): GCC 12) */
#define MINHASH_V4 __attribute__((target("arch=x86-64-v4")))
#endif
#endif
#endif
#ifndef CLONES
#define CLONES
#endif
#ifdef MINHASH_AVX2
#include <immintrin.h>
#endif

/* Byte classes of the scan: 1 token byte, 0 other byte, 2 (JSON string bodies only) a byte to
 * look at: a backslash, a quote, a control character or a non-ASCII byte. */
static u8 CLASS_RAW[256], CLASS_ESCAPED[256];
/* JSON's two-byte escapes, by the byte after the backslash: the byte they stand for (0: none).
 * orjson writes all of them but \/ (it leaves "/" as it is). */
static u8 SHORT_ESCAPE[256];
/* Hex digit values (either case; orjson writes lowercase), -1 for other bytes. */
static int HEX[256];
static u8 UPPER_HEX[256];
/* Control characters orjson writes as a two-byte escape (all others below 0x20 as \u00xx). */
static u8 U_SHORT[32];

static void init_tables(void) {
    const char *tok = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_";
    memset(CLASS_RAW, 0, sizeof CLASS_RAW);
    for (const char *p = tok; *p; p++) CLASS_RAW[(u8)*p] = 1;
    memcpy(CLASS_ESCAPED, CLASS_RAW, sizeof CLASS_RAW);
    for (int c = 0; c < 32; c++) CLASS_ESCAPED[c] = 2;
    for (int c = 128; c < 256; c++) CLASS_ESCAPED[c] = 2;
    CLASS_ESCAPED['\\'] = 2;
    CLASS_ESCAPED['"'] = 2;
    memset(SHORT_ESCAPE, 0, sizeof SHORT_ESCAPE);
    SHORT_ESCAPE['"'] = '"';
    SHORT_ESCAPE['\\'] = '\\';
    SHORT_ESCAPE['/'] = '/';
    SHORT_ESCAPE['b'] = '\b';
    SHORT_ESCAPE['f'] = '\f';
    SHORT_ESCAPE['n'] = '\n';
    SHORT_ESCAPE['r'] = '\r';
    SHORT_ESCAPE['t'] = '\t';
    for (int c = 0; c < 256; c++) HEX[c] = -1;
    for (int i = 0; i < 10; i++) HEX['0' + i] = i;
    for (int i = 0; i < 6; i++) {
        HEX['a' + i] = 10 + i;
        HEX['A' + i] = 10 + i;
    }
    memset(UPPER_HEX, 0, sizeof UPPER_HEX);
    for (int i = 0; i < 6; i++) UPPER_HEX['A' + i] = 1;
    memset(U_SHORT, 0, sizeof U_SHORT);
    U_SHORT[8] = U_SHORT[9] = U_SHORT[10] = U_SHORT[12] = U_SHORT[13] = 1;
}

/* ------------------------------------------------------------------------------------- xxh64 */

INLINE u64 rotl(u64 x, int r) { return (x << r) | (x >> (64 - r)); }

INLINE u64 xround(u64 acc, u64 lane) {
    acc += lane * P2;
    acc = rotl(acc, 31);
    return acc * P1;
}

INLINE u64 lane8(const u8 *p) {
    u64 v;
    memcpy(&v, p, 8);
    return v;
}

INLINE u64 lane4(const u8 *p) {
    u32 v;
    memcpy(&v, p, 4);
    return v;
}

/* xxh64's last steps: the bytes buf[i:end] (under 32) into h, then the final mix. */
INLINE u64 xxh64_tail(const u8 *buf, size_t i, size_t end, u64 h) {
    while (i + 8 <= end) {
        h ^= xround(0, lane8(buf + i));
        h = rotl(h, 27) * P1 + P4;
        i += 8;
    }
    if (i + 4 <= end) {
        h ^= lane4(buf + i) * P1;
        h = rotl(h, 23) * P2 + P3;
        i += 4;
    }
    while (i < end) {
        h ^= (u64)buf[i] * P5;
        h = rotl(h, 11) * P1;
        i++;
    }
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    h ^= h >> 32;
    return h;
}

/* xxh64 of buf[start:end], bit-identical to xxhash.xxh64_intdigest. */
static u64 xxh64(const u8 *buf, size_t start, size_t end, u64 seed) {
    size_t n = end - start, i = start;
    u64 h;
    if (n >= 32) {
        u64 v[4] = {seed + P1 + P2, seed + P2, seed, seed - P1};
        size_t limit = end - 32;
        while (i <= limit) {
            for (int k = 0; k < 4; k++) v[k] = xround(v[k], lane8(buf + i + 8 * k));
            i += 32;
        }
        h = rotl(v[0], 1) + rotl(v[1], 7) + rotl(v[2], 12) + rotl(v[3], 18);
        for (int k = 0; k < 4; k++) {
            h ^= xround(0, v[k]);
            h = h * P1 + P4;
        }
    } else {
        h = seed + P5;
    }
    return xxh64_tail(buf, i, end, h + n);
}

/* xxh64(buf[i:j], seed 0), the short case (most tokens) inlined into the scan loop. */
INLINE u64 token_hash(const u8 *buf, size_t i, size_t j) {
    if (j - i < 32) return xxh64_tail(buf, i, j, P5 + (j - i));
    return xxh64(buf, i, j, 0);
}

/* ------------------------------------------------------------------------------ the shingles */

/* Writes the distinct values of values[:n] to out in first-seen order; returns their number.
 * Open addressing in table (zeroed here, at most half full): first one of the first power of two
 * >= n/2 slots (at least 16), as code repeats its tokens (on the benchmark's files a median 29% of
 * a file's tokens are distinct): a quarter of the memset and of the cache lines of a table sized
 * for n. If more than half its slots fill, again from the start with the first power of two >= 2n
 * slots (the most scratch_words leaves room for). The same values in the same order either way. */
INLINE size_t distinct(const u64 *values, size_t n, u64 *table, u64 *out) {
    size_t full = 16, cap = 16;
    while (full < 2 * n) full *= 2;
    while (cap < n / 2 && cap < full) cap *= 2;
    for (;;) {
        memset(table, 0, cap * sizeof(u64)); /* 0 marks an empty slot; the value 0 is tracked apart */
        size_t mask = cap - 1, m = 0, room = cap == full ? n : cap / 2, t = 0;
        int seen_zero = 0;
        for (; t < n && m <= room; t++) {
            u64 h = values[t];
            if (h == 0) {
                if (!seen_zero) {
                    seen_zero = 1;
                    out[m++] = h;
                }
                continue;
            }
            size_t i = h & mask; /* xxh64 output is uniformly mixed: its low bits index the table */
            for (;;) {
                u64 v = table[i];
                if (v == 0) {
                    table[i] = h;
                    out[m++] = h;
                    break;
                }
                if (v == h) break;
                i = (i + 1) & mask;
            }
        }
        if (m <= room) return m;
        cap = full; /* (more than half full: too many distinct values for the small table) */
    }
}

/* The value of the four hex digits buf[i:i + 4] (-1 if they are not four hex digits); *upper:
 * whether one is an uppercase letter (orjson writes lowercase). */
INLINE long hex4(const u8 *buf, size_t i, size_t end, int *upper) {
    *upper = 0;
    if (i + 4 > end) return -1;
    long v = 0;
    for (int k = 0; k < 4; k++) {
        int h = HEX[buf[i + k]];
        if (h < 0) {
            *upper = 0;
            return -1;
        }
        v = v * 16 + h;
        *upper |= UPPER_HEX[buf[i + k]];
    }
    return v;
}

/* The token byte that the escape at buf[i] (a backslash) stands for: a \uXXXX of an ASCII letter,
 * digit or underscore, lowercased when `lower`; 0 for any other escape. */
INLINE int token_escape(const u8 *buf, size_t i, size_t end, int lower) {
    if (i + 6 > end || buf[i + 1] != 'u') return 0;
    int upper;
    long v = hex4(buf, i + 2, end, &upper);
    if (v < 0 || v >= 128 || CLASS_RAW[v] != 1) return 0;
    if (lower && v >= 'A' && v <= 'Z') v += 32;
    return (int)v;
}

/* The length of the well-formed UTF-8 sequence of a non-ASCII character at buf[i] (Python's strict
 * decoder: no overlong forms, no surrogates, nothing above U+10FFFF), 0 if there is none. */
INLINE size_t utf8_length(const u8 *buf, size_t i, size_t end) {
    u8 c = buf[i];
    size_t n;
    u8 lo, hi;
    if (c < 0xC2 || c > 0xF4) return 0;
    if (c < 0xE0) {
        n = 2, lo = 0x80, hi = 0xBF;
    } else if (c < 0xF0) {
        n = 3;
        lo = c == 0xE0 ? 0xA0 : 0x80;
        hi = c == 0xED ? 0x9F : 0xBF;
    } else {
        n = 4;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF;
    }
    if (i + n > end || buf[i + 1] < lo || buf[i + 1] > hi) return 0;
    for (size_t k = 2; k < n; k++)
        if (buf[i + k] < 0x80 || buf[i + k] > 0xBF) return 0;
    return n;
}

typedef struct {
    size_t m;        /* distinct shingles, in scratch[:m] */
    int64_t ntok;    /* distinct tokens */
    int64_t size;    /* decoded UTF-8 size, or -1 */
    int64_t close;   /* escaped: the position of the closing quote, or -1 */
    int canonical;   /* every escape is one orjson writes */
} Shingles;

INLINE unsigned ctz64(u64 x) { /* x != 0 */
#if defined(__GNUC__) || defined(__clang__)
    return (unsigned)__builtin_ctzll(x);
#else
    unsigned k = 0;
    while (!(x & 1)) x >>= 1, k++;
    return k;
#endif
}

INLINE unsigned popcount64(u64 x) {
#if defined(__GNUC__) || defined(__clang__)
    return (unsigned)__builtin_popcountll(x);
#else
    unsigned k = 0;
    for (; x; x &= x - 1) k++;
    return k;
#endif
}

/* The byte classes of buf[0:64] as bit masks (bit k: the byte at k): token bytes, backslashes,
 * quotes and the other bytes of class 2 (control characters, bytes >= 0x80). */
typedef struct {
    u64 tok, backslash, quote, other;
} ClassMasks;

INLINE ClassMasks class_masks(const u8 *buf) {
    ClassMasks m = {0, 0, 0, 0};
#if defined(__SSE2__) && (defined(__GNUC__) || defined(__clang__))
    /* [A-Za-z]: (x | 0x20) in a..z; [0-9]; "_"; x < 0x20 as a signed byte: a control character or a
     * byte >= 0x80. The ranges as signed compares of shifted bytes. */
    const __m128i sp = _mm_set1_epi8(0x20), la = _mm_set1_epi8((char)(128 - 'a')), lz = _mm_set1_epi8(-128 + 26),
                  d0 = _mm_set1_epi8((char)(128 - '0')), d9 = _mm_set1_epi8(-128 + 10), us = _mm_set1_epi8('_'),
                  bs = _mm_set1_epi8('\\'), qu = _mm_set1_epi8('"');
    for (int k = 0; k < 4; k++) {
        __m128i x = _mm_loadu_si128((const __m128i *)(buf + 16 * k));
        __m128i t = _mm_or_si128(_mm_or_si128(_mm_cmplt_epi8(_mm_add_epi8(_mm_or_si128(x, sp), la), lz),
                                              _mm_cmplt_epi8(_mm_add_epi8(x, d0), d9)),
                                 _mm_cmpeq_epi8(x, us));
        m.tok |= (u64)(unsigned)_mm_movemask_epi8(t) << (16 * k);
        m.backslash |= (u64)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, bs)) << (16 * k);
        m.quote |= (u64)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, qu)) << (16 * k);
        m.other |= (u64)(unsigned)_mm_movemask_epi8(_mm_cmplt_epi8(x, sp)) << (16 * k);
    }
#else
    for (int k = 0; k < 64; k++) {
        u8 c = buf[k];
        m.tok |= (u64)(CLASS_RAW[c] == 1) << k;
        m.backslash |= (u64)(c == '\\') << k;
        m.quote |= (u64)(c == '"') << k;
        m.other |= (u64)(c < 0x20 || c >= 0x80) << k;
    }
#endif
    return m;
}

/* The escaped bytes of a block whose first byte is not escaped (the byte after each backslash
 * that starts an escape), from its backslashes: simdjson's find_escaped (a run of backslashes
 * escapes the byte after it when it is of odd length; the runs that start on even and on odd bits
 * told apart by one addition). */
INLINE u64 escaped_bytes(u64 backslash) {
    const u64 even = 0x5555555555555555ULL;
    u64 follows = backslash << 1;
    u64 odd_starts = backslash & ~even & ~follows;
    u64 even_runs = odd_starts + backslash;
    return (even ^ (even_runs << 1)) & follows;
}

#ifndef CACHE_BYTES_PER_SLOT
#define CACHE_BYTES_PER_SLOT 16 /* the cache starts with a slot per this many bytes of the file */
#endif

/* The token hashes of a file seen so far, by the token's bytes: a token of up to 16 bytes is its
 * bytes as two little-endian words, zero-padded (token bytes are never 0), so a repeated token
 * (code repeats its tokens: a median 29% of a file's tokens are distinct) is one probe, not one
 * xxh64. Open addressing: `cap` slots of two words (word 0 zero in an empty slot), then their
 * hashes (cap words, read only where ngram > 1); it doubles at half full, alternately at the two
 * ends of the `nroom` words it has (the table part of the scratch), and stops taking tokens where
 * the next size would not fit beside the last (those tokens are hashed as they come: the same
 * hashes). */
typedef struct {
    u64 *slots, *room;
    size_t cap, used, nroom;
} TokenCache;

static const u64 BYTE_MASK[9] = {0, 0xFFULL, 0xFFFFULL, 0xFFFFFFULL, 0xFFFFFFFFULL, 0xFFFFFFFFFFULL,
                                 0xFFFFFFFFFFFFULL, 0xFFFFFFFFFFFFFFULL, ~0ULL};

INLINE size_t cache_slot(u64 w0, u64 w1, size_t cap) {
    return (size_t)(((w0 ^ rotl(w1, 29)) * P1) >> 40) & (cap - 1);
}

INLINE void cache_init(TokenCache *c, u64 *room, size_t nroom, size_t len) {
    size_t cap = 64;
    while (cap * CACHE_BYTES_PER_SLOT < len && 9 * cap <= nroom) cap *= 2; /* (to start: it rarely grows) */
    c->room = room;
    c->nroom = nroom;
    c->slots = 3 * cap <= nroom ? room : NULL;
    c->cap = cap;
    c->used = 0;
    if (c->slots != NULL) memset(c->slots, 0, 2 * cap * sizeof(u64));
}

/* Doubles the table or, where that would not fit beside the old one, gives it up. */
static void cache_grow(TokenCache *c) {
    size_t cap = 2 * c->cap;
    if (3 * (cap + c->cap) > c->nroom) {
        c->slots = NULL;
        return;
    }
    u64 *old = c->slots, *slots = old == c->room ? c->room + c->nroom - 3 * cap : c->room;
    memset(slots, 0, 2 * cap * sizeof(u64));
    for (size_t k = 0; k < c->cap; k++) {
        if (old[2 * k] == 0) continue;
        size_t q = cache_slot(old[2 * k], old[2 * k + 1], cap);
        while (slots[2 * q] != 0) q = (q + 1) & (cap - 1);
        slots[2 * q] = old[2 * k];
        slots[2 * q + 1] = old[2 * k + 1];
        slots[2 * cap + q] = old[2 * c->cap + k];
    }
    c->slots = slots;
    c->cap = cap;
}

/* The hash of the token low[i:j] (1 to 16 bytes, 16 bytes readable from low + i); *fresh: whether
 * it is the token's first time in this file (always 1 once the cache is off). */
INLINE u64 cached_token_hash(TokenCache *c, const u8 *low, size_t i, size_t j, int *fresh) {
    size_t len = j - i, l0 = len < 8 ? len : 8, l1 = len > 8 ? len - 8 : 0;
    u64 w0 = lane8(low + i) & BYTE_MASK[l0], w1 = lane8(low + i + 8) & BYTE_MASK[l1];
    *fresh = 1;
    if (c->slots == NULL) return token_hash(low, i, j);
    size_t k = cache_slot(w0, w1, c->cap);
    for (;;) {
        u64 *e = c->slots + 2 * k;
        if (e[0] == 0) break;
        if (e[0] == w0 && e[1] == w1) {
            *fresh = 0;
            return c->slots[2 * c->cap + k];
        }
        k = (k + 1) & (c->cap - 1);
    }
    u64 h = token_hash(low, i, j);
    c->slots[2 * k] = w0;
    c->slots[2 * k + 1] = w1;
    c->slots[2 * c->cap + k] = h;
    if (++c->used > c->cap / 2) cache_grow(c);
    return h;
}

/* The scan's state over one file (see shingles). */
typedef struct {
    const u8 *buf, *low;
    size_t buflen, end;
    long ngram;
    int escaped, lower;
    u64 *toks;     /* the token hashes kept (with ngram 1, each token's first time only) */
    u8 *tokbuf;    /* the decoded bytes of a token with escapes */
    size_t nt;
    int64_t size;  /* as Shingles */
    int64_t close;
    int canonical;
    TokenCache cache;
} Scan;

INLINE void keep_token(Scan *s, size_t i, size_t j) { /* the token low[i:j], as it is */
    int fresh = 1;
    u64 h = j - i <= 16 && i + 16 <= s->buflen ? cached_token_hash(&s->cache, s->low, i, j, &fresh)
                                               : token_hash(s->low, i, j);
    if (fresh || s->ngram != 1) s->toks[s->nt++] = h;
}

/* A token from buf[i] on whose bytes include \uXXXX escapes of token characters (escaped bodies
 * only; its plain bytes up to j found already): its decoded bytes gathered in tokbuf (token bytes
 * from low) and kept; returns where it ends. */
static size_t keep_escaped_token(Scan *s, size_t i, size_t j) {
    const u8 *buf = s->buf, *low = s->low;
    size_t t = 0, end = s->end;
    for (size_t p = i; p < j; p++) s->tokbuf[t++] = low[p];
    while (j < end) {
        if (CLASS_ESCAPED[buf[j]] == 1) {
            s->tokbuf[t] = low[j];
            j++;
        } else if (buf[j] == '\\') {
            int v = token_escape(buf, j, end, s->lower);
            if (v == 0) break;
            s->tokbuf[t] = (u8)v;
            j += 6;
            s->size -= 5;
            s->canonical = 0;
        } else {
            break;
        }
        t++;
    }
    s->toks[s->nt++] = token_hash(s->tokbuf, 0, t);
    return j;
}

/* The token that starts at i (its first byte a token byte) and ends at or after j: its end found
 * byte by byte from j, then kept; returns its end. */
INLINE size_t keep_token_from(Scan *s, size_t i, size_t j) {
    const u8 *cls = s->escaped ? CLASS_ESCAPED : CLASS_RAW;
    while (j < s->end && cls[s->buf[j]] == 1) j++;
    if (s->escaped && j < s->end && s->buf[j] == '\\' && token_escape(s->buf, j, s->end, s->lower) != 0)
        return keep_escaped_token(s, i, j);
    keep_token(s, i, j);
    return j;
}

/* The scan byte by byte from i on, until a position at or after `limit` (a token or an escape that
 * starts before limit is taken whole); returns where it stopped, or (size_t)-1 where the scan is
 * over (the closing quote, or a check failed: size -1). */
static size_t scan_bytes(Scan *s, size_t i, size_t limit) {
    const u8 *buf = s->buf, *cls = s->escaped ? CLASS_ESCAPED : CLASS_RAW;
    size_t end = s->end;
    while (i < limit) {
        u8 c = buf[i];
        u8 k = cls[c];
        if (k == 0) {
            i++;
        } else if (k == 1) {
            i = keep_token_from(s, i, i + 1);
        } else if (c == '\\' && token_escape(buf, i, end, s->lower) != 0) { /* a token that starts with an escape */
            i = keep_escaped_token(s, i, i);
        } else if (c == '\\') { /* an escape of a non-token character */
            u8 e = i + 1 < end ? SHORT_ESCAPE[buf[i + 1]] : 0;
            if (e != 0) {
                i += 2;
                s->size -= 1;
                s->canonical = s->canonical && e != '/'; /* orjson writes "/" unescaped */
            } else if (i + 1 < end && buf[i + 1] == 'u') { /* \uXXXX */
                int upper;
                long v = hex4(buf, i + 2, end, &upper);
                i += 6;
                if (v < 0 || v == 0 || (v >= 0xDC00 && v <= 0xDFFF)) { /* malformed, NUL, a lone low surrogate */
                    s->size = -1;
                    return (size_t)-1;
                }
                if (v >= 0xD800 && v <= 0xDBFF) { /* a high surrogate: a low one must follow */
                    long lo = -1;
                    int up2;
                    if (i + 1 < end && buf[i] == '\\' && buf[i + 1] == 'u') lo = hex4(buf, i + 2, end, &up2);
                    if (!(lo >= 0xDC00 && lo <= 0xDFFF)) {
                        s->size = -1;
                        return (size_t)-1;
                    }
                    i += 6;
                    s->size -= 8; /* twelve bytes for four */
                    s->canonical = 0;
                } else if (v < 0x20) {
                    s->size -= 5;
                    s->canonical = s->canonical && !upper && !U_SHORT[v];
                } else { /* orjson writes these characters as their UTF-8 bytes */
                    s->size -= v < 0x80 ? 5 : v < 0x800 ? 4 : 3;
                    s->canonical = 0;
                }
            } else { /* not an escape JSON has, or cut */
                s->size = -1;
                return (size_t)-1;
            }
        } else if (c >= 128) { /* a non-ASCII character (never a token byte): its bytes must be UTF-8 */
            size_t nu = utf8_length(buf, i, end);
            if (nu == 0) {
                s->size = -1;
                return (size_t)-1;
            }
            i += nu;
        } else if (c == '"') { /* the closing quote */
            s->close = (int64_t)i;
            return (size_t)-1;
        } else { /* a raw control character */
            s->size = -1;
            return (size_t)-1;
        }
    }
    return i;
}

/* Keeps the tokens of the block at base whose bytes are the bits of tok (none cut by an escape
 * that is not one of JSON's two-byte ones); a token that runs past the block is taken whole;
 * returns where the block's scan ends (base + 64, or that token's end). */
INLINE size_t keep_block_tokens(Scan *s, size_t base, u64 tok) {
    u64 starts = tok & ~(tok << 1), ends = ~tok & (tok << 1);
    while (starts) {
        size_t i = base + ctz64(starts);
        starts &= starts - 1;
        if (ends == 0) /* the block's last token runs into the next block */
            return keep_token_from(s, i, base + 64);
        keep_token(s, i, base + ctz64(ends));
        ends &= ends - 1;
    }
    return base + 64;
}

/* The scratch of a text of len bytes (preprocessing.dedup._scratch.scratch_words): n words each
 * for the distinct shingles, the token hashes and the n-gram hashes (a token per two bytes at
 * most, plus one), then a table of table_words(n) words. */
INLINE size_t scratch_n(size_t len) { return len / 2 + 2; }

INLINE size_t table_words(size_t n) { /* the first power of two >= 2n (at least 16) */
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    return cap;
}

/* Distinct shingle hashes of the text at buf[start:end], in first-seen order, in scratch[:m].
 *
 * Token bytes are read from `low` (buf itself, or its lowercased copy), everything else from buf.
 * Not `escaped`: the text is buf[start:end] as it is. `escaped`: a JSON string body starts at
 * buf[start] and ends at the first unescaped quote before `end` (its position is returned: the
 * text's end); its escapes are decoded (a \uXXXX of a token character is part of the token,
 * lowercased when `lower`; surrogate pairs are one character of four UTF-8 bytes) and the decoded
 * UTF-8 size is returned, or -1 unless the body is valid JSON (closing quote, no raw control
 * character, every escape well-formed, no lone surrogate), well-formed UTF-8 (Python's strict
 * rules) and free of NUL (which the readers reject as binary). `canonical`: every escape is one
 * orjson writes (the body is byte for byte orjson's). scratch holds scratch_words(end - start)
 * words: out, token hashes, n-gram hashes (first the decoded bytes of a token with escapes), table
 * (first the token cache). buflen: the bytes readable from buf and low (the cache reads 16 at a
 * time from a token's start).
 *
 * The scan takes 64 bytes at a time as bit masks (class_masks, SSE2): the tokens are the runs of
 * token bits, each found by two bit scans, where a byte loop mispredicts a branch at the end of
 * every run; an escaped body's escapes are found by escaped_bytes, and a block whose escapes are
 * all of JSON's two-byte ones, with no control character and no non-ASCII byte, is taken as a
 * whole (its escaped bytes are no token bytes, each escape one byte less of decoded size). Other
 * blocks, and the last bytes (under 64), are scanned byte by byte (scan_bytes). Each token goes
 * through the token cache: with ngram 1 only a token's first time in the file is kept (the later
 * ones add nothing to the set), with ngram > 1 every token's hash. The same values, in the same
 * first-seen order, as a byte loop that hashes every token. */
INLINE Shingles shingles(const u8 *buf, const u8 *low, size_t buflen, size_t start, size_t end, long ngram,
                         int escaped, int lower, u64 *scratch) {
    size_t n = scratch_n(end - start), room = table_words(n);
    u64 *out = scratch, *toks = scratch + n, *grams = scratch + 2 * n, *table = scratch + 3 * n;
    Scan s = {buf, low, buflen, end, ngram, escaped, lower, toks, (u8 *)grams, 0, (int64_t)(end - start), -1, 1,
              {NULL, NULL, 0, 0, 0}};
    Shingles r;
    size_t i = start;
    cache_init(&s.cache, table, room, end - start);
    while (i < end) {
        if (i + 64 > end) { /* (the last bytes) */
            scan_bytes(&s, i, end);
            break;
        }
        ClassMasks m = class_masks(buf + i);
        if (!escaped) {
            i = keep_block_tokens(&s, i, m.tok);
            continue;
        }
        /* The block starts at no escaped byte (the one before it is no backslash that starts an
         * escape: a block that ends in one ends before it). */
        u64 esc = m.backslash ? escaped_bytes(m.backslash) : 0, quote = m.quote & ~esc, inside = ~(u64)0;
        u64 cut = (m.backslash & ~esc) >> 63; /* an escape that starts at the block's last byte */
        if (quote) inside = (quote & (0 - quote)) - 1; /* the first one closes the body */
        int whole = (m.other & inside) == 0, slash = 0;
        if (cut && !quote && (i + 64 == end || buf[i + 64] == 'u'))
            whole = 0; /* (a \uXXXX there may continue the token before it) */
        for (u64 e = esc & inside; whole && e; e &= e - 1) {
            u8 c = SHORT_ESCAPE[buf[i + ctz64(e)]];
            whole = c != 0; /* (else a \uXXXX, or no escape JSON has) */
            slash |= c == '/';
        }
        if (!whole) {
            i = scan_bytes(&s, i, i + 64);
            if (i == (size_t)-1) break;
            continue;
        }
        s.size -= (int64_t)popcount64(esc & inside);
        s.canonical = s.canonical && !slash; /* (orjson writes "/" unescaped) */
        size_t next = keep_block_tokens(&s, i, m.tok & ~esc & inside);
        if (quote) {
            s.close = (int64_t)(i + ctz64(quote));
            break;
        }
        i = cut && !quote ? i + 63 : next; /* (the cut escape: the next block starts at its backslash) */
    }
    if (escaped) {
        if (s.close < 0)
            s.size = -1;
        else
            s.size -= (int64_t)(end - (size_t)s.close);
    }
    r.size = s.size;
    r.close = s.close;
    r.canonical = s.canonical;
    size_t nt = s.nt, nd = distinct(toks, nt, table, out);
    r.ntok = (int64_t)nd;
    if (ngram == 1) {
        r.m = nd;
        return r;
    }
    if (nt < (size_t)ngram) {
        r.m = 0;
        return r;
    }
    const u8 *raw = (const u8 *)toks; /* little-endian lanes of the token hashes */
    size_t ng = nt - (size_t)ngram + 1;
    for (size_t g = 0; g < ng; g++) grams[g] = xxh64(raw, 8 * g, 8 * (g + (size_t)ngram), 0);
    r.m = distinct(grams, ng, table, out);
    return r;
}

/* Permutations outside, shingles inside: the inner loop is a min-reduction over the shingles,
 * which vectorises without loading and storing an accumulator row. Four permutations per sweep:
 * four independent minima (the compare-and-blend of one would be a chain of dependent
 * instructions, latency-bound) that share each shingle's load and split. */
INLINE void minhash_into(const u64 *sh, size_t n, const u64 *a, const u64 *b, size_t nperm, u32 *out) {
    size_t k0 = 0;
    for (; k0 + 4 <= nperm; k0 += 4) {
        u64 a0 = a[k0], a1 = a[k0 + 1], a2 = a[k0 + 2], a3 = a[k0 + 3];
        u64 b0 = b[k0], b1 = b[k0 + 1], b2 = b[k0 + 2], b3 = b[k0 + 3];
        u64 m0 = ~(u64)0, m1 = ~(u64)0, m2 = ~(u64)0, m3 = ~(u64)0;
        for (size_t i = 0; i < n; i++) {
            u64 h = sh[i];
            u64 v0 = a0 * h + b0, v1 = a1 * h + b1, v2 = a2 * h + b2, v3 = a3 * h + b3;
            m0 = v0 < m0 ? v0 : m0;
            m1 = v1 < m1 ? v1 : m1;
            m2 = v2 < m2 ? v2 : m2;
            m3 = v3 < m3 ? v3 : m3;
        }
        out[k0] = (u32)(m0 >> 32);
        out[k0 + 1] = (u32)(m1 >> 32);
        out[k0 + 2] = (u32)(m2 >> 32);
        out[k0 + 3] = (u32)(m3 >> 32);
    }
    for (size_t k = k0; k < nperm; k++) {
        u64 ak = a[k], bk = b[k], m = ~(u64)0;
        for (size_t i = 0; i < n; i++) {
            u64 v = ak * sh[i] + bk;
            m = v < m ? v : m;
        }
        out[k] = (u32)(m >> 32);
    }
}

/* (work: n words of scratch the loop may use) */
typedef void (*minhash_fn)(const u64 *, size_t, const u64 *, const u64 *, size_t, u32 *, u64 *);

static void minhash_baseline(const u64 *sh, size_t n, const u64 *a, const u64 *b, size_t nperm, u32 *out, u64 *work) {
    (void)work;
    minhash_into(sh, n, a, b, nperm, out);
}

#ifdef MINHASH_V4
MINHASH_V4 static void minhash_v4(const u64 *sh, size_t n, const u64 *a, const u64 *b, size_t nperm, u32 *out,
                                  u64 *work) {
    (void)work;
    minhash_into(sh, n, a, b, nperm, out);
}
#endif

#ifdef MINHASH_AVX2
/* AVX2 has neither a 64-bit multiply nor an unsigned 64-bit compare, but only the high half of
 * a*h + b (mod 2^64) is kept, and x -> x >> 32 is monotone, so the minimum can be taken on the high
 * halves (u32, vpminud), and with a = aH*2^32 + aL, h = hH*2^32 + hL, b = bH*2^32 + bL:
 *     hi32(a*h + b) = hi32(aL*hL + b) + aH*hL + aL*hH  (mod 2^32)
 * (aL*hL + b: one 32x32->64 multiply, vpmuludq, and a 64-bit add whose high half is hi32(aL*hL +
 * bL) + bH; the cross terms: 32-bit multiplies, vpmulld). Eight shingles per step: two vectors of
 * four u64, their halves interleaved (lanes 0, 2, 4, 6 the first four, 1, 3, 5, 7 the others).
 * The interleaved halves depend on the shingles only: made once per file into `work` (n words),
 * and two permutations per sweep share their loads and the shift of the low halves. */
MINHASH_AVX2 INLINE __m256i minhash_avx2_step(__m256i hl, __m256i ho, __m256i hh, __m256i A, __m256i B, __m256i AH,
                                             __m256i AL) {
    __m256i t0 = _mm256_add_epi64(_mm256_mul_epu32(hl, A), B);
    __m256i t1 = _mm256_add_epi64(_mm256_mul_epu32(ho, A), B);
    __m256i t = _mm256_blend_epi32(_mm256_srli_epi64(t0, 32), t1, 0xAA);
    __m256i cross = _mm256_add_epi32(_mm256_mullo_epi32(hl, AH), _mm256_mullo_epi32(hh, AL));
    return _mm256_add_epi32(t, cross);
}

MINHASH_AVX2 INLINE u32 minhash_avx2_min(__m256i M, const u64 *sh, size_t from, size_t n, u64 a, u64 b) {
    __m128i m = _mm_min_epu32(_mm256_castsi256_si128(M), _mm256_extracti128_si256(M, 1));
    m = _mm_min_epu32(m, _mm_shuffle_epi32(m, 0x4E));
    m = _mm_min_epu32(m, _mm_shuffle_epi32(m, 0xB1));
    u32 r = (u32)_mm_cvtsi128_si32(m);
    for (size_t i = from; i < n; i++) { /* the last n % 8 shingles */
        u32 v = (u32)((a * sh[i] + b) >> 32);
        r = v < r ? v : r;
    }
    return r;
}

MINHASH_AVX2 static void minhash_avx2(const u64 *sh, size_t n, const u64 *a, const u64 *b, size_t nperm, u32 *out,
                                      u64 *work) {
    size_t n8 = n / 8 * 8;
    for (size_t i = 0; i < n8; i += 8) { /* work[i:i + 4]: the low halves, work[i + 4:i + 8]: the high ones */
        __m256i h0 = _mm256_loadu_si256((const __m256i *)(sh + i));
        __m256i h1 = _mm256_loadu_si256((const __m256i *)(sh + i + 4));
        _mm256_storeu_si256((__m256i *)(work + i), _mm256_blend_epi32(h0, _mm256_slli_epi64(h1, 32), 0xAA));
        _mm256_storeu_si256((__m256i *)(work + i + 4), _mm256_blend_epi32(_mm256_srli_epi64(h0, 32), h1, 0xAA));
    }
    size_t k = 0;
    for (; k + 2 <= nperm; k += 2) {
        __m256i A0 = _mm256_set1_epi64x((long long)a[k]), B0 = _mm256_set1_epi64x((long long)b[k]);
        __m256i AH0 = _mm256_set1_epi32((int)(u32)(a[k] >> 32)), AL0 = _mm256_set1_epi32((int)(u32)a[k]);
        __m256i A1 = _mm256_set1_epi64x((long long)a[k + 1]), B1 = _mm256_set1_epi64x((long long)b[k + 1]);
        __m256i AH1 = _mm256_set1_epi32((int)(u32)(a[k + 1] >> 32)), AL1 = _mm256_set1_epi32((int)(u32)a[k + 1]);
        __m256i M0 = _mm256_set1_epi32(-1), M1 = M0;
        for (size_t i = 0; i < n8; i += 8) {
            __m256i hl = _mm256_loadu_si256((const __m256i *)(work + i));
            __m256i hh = _mm256_loadu_si256((const __m256i *)(work + i + 4));
            __m256i ho = _mm256_srli_epi64(hl, 32);
            M0 = _mm256_min_epu32(M0, minhash_avx2_step(hl, ho, hh, A0, B0, AH0, AL0));
            M1 = _mm256_min_epu32(M1, minhash_avx2_step(hl, ho, hh, A1, B1, AH1, AL1));
        }
        out[k] = minhash_avx2_min(M0, sh, n8, n, a[k], b[k]);
        out[k + 1] = minhash_avx2_min(M1, sh, n8, n, a[k + 1], b[k + 1]);
    }
    for (; k < nperm; k++) {
        __m256i A = _mm256_set1_epi64x((long long)a[k]), B = _mm256_set1_epi64x((long long)b[k]);
        __m256i AH = _mm256_set1_epi32((int)(u32)(a[k] >> 32)), AL = _mm256_set1_epi32((int)(u32)a[k]);
        __m256i M = _mm256_set1_epi32(-1);
        for (size_t i = 0; i < n8; i += 8) {
            __m256i hl = _mm256_loadu_si256((const __m256i *)(work + i));
            __m256i hh = _mm256_loadu_si256((const __m256i *)(work + i + 4));
            M = _mm256_min_epu32(M, minhash_avx2_step(hl, _mm256_srli_epi64(hl, 32), hh, A, B, AH, AL));
        }
        out[k] = minhash_avx2_min(M, sh, n8, n, a[k], b[k]);
    }
}
#endif

/* The permutations' loops by name, best first; MINHASH: the one in use (the best one the CPU
 * has, chosen at import; minhash_loop() changes it, for tests and benchmarks). */
static const struct {
    const char *name;
    minhash_fn fn;
} MINHASH_LOOPS[] = {
#ifdef MINHASH_V4
    {"x86-64-v4", minhash_v4},
#endif
#ifdef MINHASH_AVX2
    {"avx2", minhash_avx2},
#endif
    {"baseline", minhash_baseline},
};
#define N_LOOPS (sizeof MINHASH_LOOPS / sizeof MINHASH_LOOPS[0])
static size_t MINHASH = N_LOOPS - 1;

static int cpu_has(const char *name) {
#ifdef MINHASH_V4
    if (strcmp(name, "x86-64-v4") == 0) return __builtin_cpu_supports("x86-64-v4");
#endif
#ifdef MINHASH_AVX2
    if (strcmp(name, "avx2") == 0) return __builtin_cpu_supports("avx2");
#endif
    return strcmp(name, "baseline") == 0;
}

static size_t scratch_words(size_t max_bytes) { /* as preprocessing.dedup._scratch.scratch_words */
    size_t n = scratch_n(max_bytes);
    return 3 * n + table_words(n);
}

CLONES static void signatures_impl(const u8 *buf, const u8 *low, size_t buflen, const int64_t *starts, const int64_t *ends,
                                   size_t ndocs, long ngram, int escaped, int lower, const u64 *a, const u64 *b,
                                   size_t nperm, u32 *sig, int64_t *ntok, int64_t *size, int64_t *close,
                                   u8 *canonical, u64 *scratch) {
    for (size_t d = 0; d < ndocs; d++) {
        Shingles s = shingles(buf, low, buflen, (size_t)starts[d], (size_t)ends[d], ngram, escaped, lower, scratch);
        ntok[d] = s.ntok;
        size[d] = s.size;
        close[d] = s.close;
        canonical[d] = (u8)s.canonical;
        /* (the token hashes' words, after the shingles, are free now: the loop's work) */
        size_t n = scratch_n((size_t)ends[d] - (size_t)starts[d]);
        if (s.size >= 0) MINHASH_LOOPS[MINHASH].fn(scratch, s.m, a, b, nperm, sig + d * nperm, scratch + n);
    }
}

CLONES static size_t shingles_impl(const u8 *buf, size_t len, long ngram, u64 *scratch) {
    return shingles(buf, buf, len, 0, len, ngram, 0, 0, scratch).m;
}

/* ----------------------------------------------------------------------------- Python calls */

static int check(int ok, const char *what) {
    if (!ok) PyErr_Format(PyExc_ValueError, "MinHash kernel: %s", what);
    return ok;
}

PyDoc_STRVAR(signatures_doc,
"signatures(buf, low, starts, ends, ngram, escaped, lower, a, b, sig, ntok, size, close, canonical, scratch)\n\n"
"Signatures of len(starts) files: file d is the text at buf[starts[d]:ends[d]] (a JSON string body\n"
"when escaped; token bytes read from low, buf's lowercased copy or buf itself); its signature goes\n"
"to sig[d] (uint32, len(a) permutations), its number of distinct tokens to ntok[d], its decoded size\n"
"(or -1) to size[d], where the text ends to close[d] (escaped: its closing quote, or -1) and whether\n"
"its escapes are orjson's to canonical[d]. A file whose size is -1 gets no signature (the caller\n"
"decodes it). starts, ends, ntok, size, close: int64; a, b, scratch: uint64; canonical: uint8.");

static PyObject *py_signatures(PyObject *self, PyObject *args) {
    Py_buffer buf, low, starts, ends, a, b, sig, ntok, size, close, canon, scratch;
    long ngram;
    int escaped, lower;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*y*y*y*lppy*y*w*w*w*w*w*w*", &buf, &low, &starts, &ends, &ngram, &escaped, &lower,
                          &a, &b, &sig, &ntok, &size, &close, &canon, &scratch))
        return NULL;
    size_t ndocs = (size_t)starts.len / 8, nperm = (size_t)a.len / 8, maxlen = 0;
    const int64_t *s = starts.buf, *e = ends.buf;
    int ok = check(ngram >= 1, "ngram must be >= 1") && check(low.len == buf.len, "low and buf differ in length") &&
             check(ends.len == starts.len && starts.len % 8 == 0, "starts and ends: int64 arrays of one length") &&
             check(a.len == b.len && a.len % 8 == 0 && nperm > 0, "a and b: uint64 arrays of one length") &&
             check((size_t)sig.len >= ndocs * nperm * 4, "sig is too small") &&
             check((size_t)ntok.len >= ndocs * 8 && (size_t)size.len >= ndocs * 8 && (size_t)close.len >= ndocs * 8 &&
                       (size_t)canon.len >= ndocs, "an output array is too small");
    for (size_t d = 0; ok && d < ndocs; d++) {
        ok = check(s[d] >= 0 && s[d] <= e[d] && e[d] <= (int64_t)buf.len, "a range is outside buf");
        if (ok && (size_t)(e[d] - s[d]) > maxlen) maxlen = (size_t)(e[d] - s[d]);
    }
    ok = ok && check((size_t)scratch.len / 8 >= scratch_words(maxlen), "scratch is smaller than scratch_words()");
    if (ok) {
        Py_BEGIN_ALLOW_THREADS
        signatures_impl(buf.buf, low.buf, (size_t)buf.len, s, e, ndocs, ngram, escaped, lower, a.buf, b.buf, nperm, sig.buf, ntok.buf,
                        size.buf, close.buf, canon.buf, scratch.buf);
        Py_END_ALLOW_THREADS
    }
    Py_buffer *all[] = {&buf, &low, &starts, &ends, &a, &b, &sig, &ntok, &size, &close, &canon, &scratch};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) PyBuffer_Release(all[k]);
    if (!ok) return NULL;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(minhash_loop_doc,
"minhash_loop(name=None) -> str\n\n"
"The loop signatures() runs over the permutations: 'x86-64-v4', 'avx2' or 'baseline', from import\n"
"the best one this CPU has (and the compiler built). With a name, that one from now on (ValueError\n"
"if it is not here). Returns the one in use. For tests and benchmarks: all give the same bits.");

static PyObject *py_minhash_loop(PyObject *self, PyObject *args) {
    const char *name = NULL;
    (void)self;
    if (!PyArg_ParseTuple(args, "|z", &name)) return NULL;
    if (name != NULL) {
        size_t k = 0;
        while (k < N_LOOPS && strcmp(MINHASH_LOOPS[k].name, name) != 0) k++;
        if (k == N_LOOPS || !cpu_has(name)) {
            PyErr_Format(PyExc_ValueError, "MinHash kernel: no %s loop here", name);
            return NULL;
        }
        MINHASH = k;
    }
    return PyUnicode_FromString(MINHASH_LOOPS[MINHASH].name);
}

PyDoc_STRVAR(band_keys_doc,
"band_keys(sig, bands, rows, keys)\n\n"
"keys[d, i] = xxh64(bytes of band i of signature d, seed=i): sig uint32 (n, bands * rows or more\n"
"columns), keys uint64 (n, bands).");

static PyObject *py_band_keys(PyObject *self, PyObject *args) {
    Py_buffer sig, keys;
    long bands, rows, nperm;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*lllw*", &sig, &nperm, &bands, &rows, &keys)) return NULL;
    int ok = check(bands >= 1 && rows >= 1 && nperm >= bands * rows, "bands * rows must be in [1, num_perm]") &&
             check(sig.len % (4 * nperm) == 0, "sig is not (n, num_perm) uint32");
    size_t n = ok ? (size_t)sig.len / (4 * (size_t)nperm) : 0;
    ok = ok && check((size_t)keys.len >= n * (size_t)bands * 8, "keys is too small");
    if (ok) {
        const u8 *raw = sig.buf;
        u64 *out = keys.buf;
        Py_BEGIN_ALLOW_THREADS
        for (size_t d = 0; d < n; d++) {
            const u8 *row = raw + d * 4 * (size_t)nperm;
            for (long i = 0; i < bands; i++)
                out[d * (size_t)bands + (size_t)i] =
                    xxh64(row, 4 * (size_t)(i * rows), 4 * (size_t)((i + 1) * rows), (u64)i);
        }
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&sig);
    PyBuffer_Release(&keys);
    if (!ok) return NULL;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(shingles_doc,
"shingles(buf, ngram, scratch, out) -> int\n\n"
"The distinct shingle hashes of buf, in first-seen order, into out (uint64); returns how many.");

static PyObject *py_shingles(PyObject *self, PyObject *args) {
    Py_buffer buf, scratch, out;
    long ngram;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*lw*w*", &buf, &ngram, &scratch, &out)) return NULL;
    size_t len = (size_t)buf.len, m = 0;
    int ok = check(ngram >= 1, "ngram must be >= 1") &&
             check((size_t)scratch.len / 8 >= scratch_words(len), "scratch is smaller than scratch_words()") &&
             check((size_t)out.len / 8 >= scratch_n(len), "out is too small");
    if (ok) {
        Py_BEGIN_ALLOW_THREADS
        m = shingles_impl(buf.buf, len, ngram, scratch.buf);
        memcpy(out.buf, scratch.buf, m * sizeof(u64));
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&buf);
    PyBuffer_Release(&scratch);
    PyBuffer_Release(&out);
    if (!ok) return NULL;
    return PyLong_FromSize_t(m);
}

/* The closing quote of the JSON string body that starts at i, before e: from quote to quote (memchr),
 * a quote after an even run of backslashes (the run starts an escape: the byte before it is no
 * backslash) is the closing one; -1 when there is none. (string_ends, json_lines_scan) */
static int64_t string_end(const u8 *b, size_t i, size_t e) {
    size_t start = i;
    while (i < e) {
        const u8 *q = memchr(b + i, '"', e - i);
        if (q == NULL) break;
        size_t j = (size_t)(q - b), k = j;
        while (k > start && b[k - 1] == '\\') k--;
        if ((j - k) % 2 == 0) return (int64_t)j;
        i = j + 1;
    }
    return -1;
}

PyDoc_STRVAR(string_ends_doc,
"string_ends(buf, starts, ends, close)\n\n"
"Where JSON string bodies end: close[d] = the position in buf of the first unescaped quote in\n"
"buf[starts[d]:ends[d]] (a backslash escapes the byte after it), -1 when there is none. Nothing\n"
"else is checked (pass 2 of `dedup` finds bodies that the signatures kernel checked in pass 1).\n"
"starts, ends, close: int64.");

static PyObject *py_string_ends(PyObject *self, PyObject *args) {
    Py_buffer buf, starts, ends, close;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*y*y*w*", &buf, &starts, &ends, &close)) return NULL;
    size_t n = (size_t)starts.len / 8;
    const int64_t *s = starts.buf, *e = ends.buf;
    int64_t *out = close.buf;
    int ok = check(ends.len == starts.len && starts.len % 8 == 0, "starts and ends: int64 arrays of one length") &&
             check((size_t)close.len >= n * 8, "close is too small");
    for (size_t d = 0; ok && d < n; d++)
        ok = check(s[d] >= 0 && s[d] <= e[d] && e[d] <= (int64_t)buf.len, "a range is outside buf");
    if (ok) {
        const u8 *b = buf.buf;
        Py_BEGIN_ALLOW_THREADS
        for (size_t d = 0; d < n; d++) out[d] = string_end(b, (size_t)s[d], (size_t)e[d]);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&buf);
    PyBuffer_Release(&starts);
    PyBuffer_Release(&ends);
    PyBuffer_Release(&close);
    if (!ok) return NULL;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(orjson_body_doc,
"orjson_body(buf, start, close) -> bytes | None\n\n"
"The JSON string body buf[start:close] (escaped, without its quotes) as orjson.dumps writes the\n"
"string it stands for: \\/ and every \\uXXXX but those of control characters become the\n"
"character's UTF-8 bytes (a surrogate pair one character), control characters are written as\n"
"orjson does (\\b \\t \\n \\f \\r, else \\u00xx), the other two-byte escapes and every raw byte\n"
"are kept. None for a malformed escape or a lone surrogate (raw bytes are not checked: the\n"
"signatures kernel checked the body in pass 1).");

static PyObject *py_orjson_body(PyObject *self, PyObject *args) {
    Py_buffer buf;
    Py_ssize_t start, close;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*nn", &buf, &start, &close)) return NULL;
    if (!check(start >= 0 && start <= close && close <= buf.len, "the body is outside buf")) {
        PyBuffer_Release(&buf);
        return NULL;
    }
    /* no escape grows: the output is at most the body's size */
    PyObject *res = PyBytes_FromStringAndSize(NULL, close - start);
    if (res == NULL) {
        PyBuffer_Release(&buf);
        return NULL;
    }
    static const char hexdigits[] = "0123456789abcdef";
    const u8 *b = buf.buf;
    u8 *o = (u8 *)PyBytes_AS_STRING(res);
    size_t i = (size_t)start, end = (size_t)close, w = 0;
    int ok = 1;
    while (i < end) {
        const u8 *p = memchr(b + i, '\\', end - i);
        size_t j = p == NULL ? end : (size_t)(p - b);
        memcpy(o + w, b + i, j - i);
        w += j - i;
        i = j;
        if (i >= end) break;
        if (i + 1 >= end) {
            ok = 0;
            break;
        }
        u8 e = b[i + 1];
        if (e == '/') {
            o[w++] = '/';
            i += 2;
            continue;
        }
        if (e != 'u') {
            if (SHORT_ESCAPE[e] == 0) {
                ok = 0;
                break;
            }
            o[w++] = '\\';
            o[w++] = e;
            i += 2;
            continue;
        }
        int upper;
        long v = hex4(b, i + 2, end, &upper);
        i += 6;
        if (v < 0 || (v >= 0xDC00 && v <= 0xDFFF)) {
            ok = 0;
            break;
        }
        if (v >= 0xD800 && v <= 0xDBFF) {
            long lo = -1;
            int up2;
            if (i + 1 < end && b[i] == '\\' && b[i + 1] == 'u') lo = hex4(b, i + 2, end, &up2);
            if (!(lo >= 0xDC00 && lo <= 0xDFFF)) {
                ok = 0;
                break;
            }
            i += 6;
            long cp = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
            o[w++] = (u8)(0xF0 | (cp >> 18));
            o[w++] = (u8)(0x80 | ((cp >> 12) & 0x3F));
            o[w++] = (u8)(0x80 | ((cp >> 6) & 0x3F));
            o[w++] = (u8)(0x80 | (cp & 0x3F));
        } else if (v < 0x20) {
            static const char short_of[32] = {0, 0, 0, 0, 0, 0, 0, 0, 'b', 't', 'n', 0, 'f', 'r'};
            o[w++] = '\\';
            if (short_of[v]) {
                o[w++] = (u8)short_of[v];
            } else {
                o[w++] = 'u';
                o[w++] = '0';
                o[w++] = '0';
                o[w++] = (u8)hexdigits[v >> 4];
                o[w++] = (u8)hexdigits[v & 15];
            }
        } else if (v == '"' || v == '\\') {
            o[w++] = '\\';
            o[w++] = (u8)v;
        } else if (v < 0x80) {
            o[w++] = (u8)v;
        } else if (v < 0x800) {
            o[w++] = (u8)(0xC0 | (v >> 6));
            o[w++] = (u8)(0x80 | (v & 0x3F));
        } else {
            o[w++] = (u8)(0xE0 | (v >> 12));
            o[w++] = (u8)(0x80 | ((v >> 6) & 0x3F));
            o[w++] = (u8)(0x80 | (v & 0x3F));
        }
    }
    PyBuffer_Release(&buf);
    if (!ok) {
        Py_DECREF(res);
        Py_RETURN_NONE;
    }
    if (_PyBytes_Resize(&res, (Py_ssize_t)w) < 0) return NULL;
    return res;
}

PyDoc_STRVAR(xxh64_doc, "xxh64(data, seed) -> int\n\nxxh64 of data, as xxhash.xxh64_intdigest(data, seed).");

static PyObject *py_xxh64(PyObject *self, PyObject *args) {
    Py_buffer buf;
    unsigned long long seed;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*K", &buf, &seed)) return NULL;
    u64 h = xxh64(buf.buf, 0, (size_t)buf.len, (u64)seed);
    PyBuffer_Release(&buf);
    return PyLong_FromUnsignedLongLong(h);
}

static PyObject *py_json_lines_scan(PyObject *self, PyObject *args); /* stream's, at the end of the file */
static PyObject *py_ascii_text_stats(PyObject *self, PyObject *args); /* stream's metrics, at the end of the file */
static PyObject *py_json_lines_decode(PyObject *self, PyObject *args); /* stream's rows, at the end of the file */
static PyObject *py_ascii_lower(PyObject *self, PyObject *arg); /* the filters' joined text, at the end of the file */
static PyObject *py_newline_ends(PyObject *self, PyObject *arg); /* the reader's line ends, at the end of the file */
static PyObject *py_ascii_word_counts(PyObject *self, PyObject *args); /* the filters' words, at the end of the file */
static PyObject *py_hashset_add(PyObject *self, PyObject *args); /* exact dedup's table, at the end of the file */
PyDoc_STRVAR(hashset_add_doc,
"hashset_add(table, keys, new)\n\n"
"Insert the nonzero uint64 keys, in order, into the open-addressing table (uint64, a power of two\n"
"slots, 0 empty; first slot: the top bits of key * 0x9E3779B97F4A7C15, then linear probing);\n"
"new[i] (uint8/bool) = whether key i was absent. Returns the number added.");
PyDoc_STRVAR(ascii_word_counts_doc,
"ascii_word_counts(texts, classes, table, out_start, out_ids, lengths, shift, counts)\n\n"
"counts[d * k + p] = texts[d].lower().count(pattern p) for a list of ASCII str, k = len(lengths), by one\n"
"pass of the DFA (classes: uint8[256], the class of each byte; table: int32[states << shift], entry\n"
"next state << shift; out_start: int32[states + 1] and out_ids: int32, the patterns ending in each\n"
"state, those with patterns last; lengths: int32[k]) that preprocessing/filters/joined.py builds.\n"
"counts: int64, zeroed here.");
PyDoc_STRVAR(newline_ends_doc,
"newline_ends(buf)\n\n"
"The position of every b'\\n' in the bytes-like buf, ascending, as a list of ints (memchr from one to the next).");
PyDoc_STRVAR(ascii_lower_doc,
"ascii_lower(text)\n\n"
"text.encode('ascii').lower() for an ASCII str (ValueError for another): one pass, no copy between.");
PyDoc_STRVAR(json_lines_decode_doc,
"json_lines_decode(lines, content, repo, path, license, cls, slots, source, max_bytes)\n\n"
"lines: a list of (line number, line bytes), or a frame's (data, ends, first): line d is\n"
"data[ends[d-1] + 1:ends[d]] (ends: a list of the newlines' positions), numbered first + d. Per line, cls(content, repo_name, path, license or None,\n"
"extra, source, line number) (with slots, a tuple of cls's 8 fields' descriptors in that order, the\n"
"last one metrics: an empty cls whose fields are set through them, metrics None) when the line is a simple JSON object (json_lines_scan's form) whose\n"
"strings hold ASCII only (two-byte escapes and \\u escapes of 1..127) and whose content is a record's\n"
"(non-empty, not only whitespace, at most max_bytes); None for any other line (and line 1).");
PyDoc_STRVAR(ascii_text_stats_doc,
"ascii_text_stats(buf, ends, alnum, lines, max_line, line_chars, newlines, equals)\n\n"
"Text d = buf[ends[d-1]:ends[d]] (ends[-1] = 0; buf: bytes or an ASCII str), ASCII: alnum[d] its [0-9A-Za-z] characters, lines[d]\n"
"len(text.splitlines()), max_line[d] the longest of them (0: none), line_chars[d] their characters,\n"
"newlines[d] text.count('\\n'), equals[d] text.count('='). ends and the outputs: int64 arrays.");
PyDoc_STRVAR(json_lines_scan_doc,
"json_lines_scan(buf, starts, ends, content, repo, path, license, status, h1, h2)\n\n"
"For line d = buf[starts[d]:ends[d]]: status[d] = 1 when it is a JSON object of the simple form\n"
"described in _cminhash.c (content, repo, path, license: the four mapped field names, bytes), with\n"
"h1[d], h2[d] = xxh64 of its content string's raw body with seeds 0 and 1; else status[d] = 0.\n"
"starts, ends: int64; status: uint8; h1, h2: uint64.");


static PyMethodDef methods[] = {
    {"signatures", py_signatures, METH_VARARGS, signatures_doc},
    {"band_keys", py_band_keys, METH_VARARGS, band_keys_doc},
    {"minhash_loop", py_minhash_loop, METH_VARARGS, minhash_loop_doc},
    {"shingles", py_shingles, METH_VARARGS, shingles_doc},
    {"xxh64", py_xxh64, METH_VARARGS, xxh64_doc},
    {"string_ends", py_string_ends, METH_VARARGS, string_ends_doc},
    {"orjson_body", py_orjson_body, METH_VARARGS, orjson_body_doc},
    {"json_lines_scan", py_json_lines_scan, METH_VARARGS, json_lines_scan_doc},
    {"ascii_text_stats", py_ascii_text_stats, METH_VARARGS, ascii_text_stats_doc},
    {"json_lines_decode", py_json_lines_decode, METH_VARARGS, json_lines_decode_doc},
    {"ascii_lower", py_ascii_lower, METH_O, ascii_lower_doc},
    {"newline_ends", py_newline_ends, METH_O, newline_ends_doc},
    {"ascii_word_counts", py_ascii_word_counts, METH_VARARGS, ascii_word_counts_doc},
    {"hashset_add", py_hashset_add, METH_VARARGS, hashset_add_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_cminhash",
    "The MinHash kernels of `dedup` in C (see preprocessing/dedup/native.py).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__cminhash(void) {
    init_tables();
    for (MINHASH = 0; !cpu_has(MINHASH_LOOPS[MINHASH].name); MINHASH++) /* the best one here */
        ;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
#ifdef CMINHASH_SOURCE_SHA256
    if (PyModule_AddStringConstant(m, "SOURCE_SHA256", CMINHASH_SOURCE_SHA256) < 0) {
        Py_DECREF(m);
        return NULL;
    }
#endif
    return m;
}

/* ------------------------------------------- stream: JSON lines whose content string may be known
 * `json_lines_scan` (preprocessing/readers/jsonl.py, `JsonlReader.scan_lines`) checks, for each line of
 * a unit, that it is a JSON object of a simple form that any JSON parser accepts, and where its
 * content string's body is, without decoding it: `stream` then counts a line whose body it met in a
 * line it decoded (same raw bytes, same text) as the record that line gives, unparsed.
 *
 * Simple: whitespace as JSON has it; keys and the values other than the content's are strings of
 * printable ASCII whose escapes are the two-byte ones (no \u: a surrogate must be checked; none in
 * a top-level key: an escaped key could spell a mapped name another way), numbers
 * of at most 15 digits and no exponent, true, false, null, and arrays or objects of those (nesting
 * at most 8 deep); the four mapped fields once each at the top level, the repository's and the
 * path's strings, the license's a string or null (or missing); nothing after the object but
 * whitespace. The content's body is not checked (the caller knows it valid when it knows it): it
 * ends at the first quote after an even run of backslashes. Anything else is not simple (status 0):
 * the caller decodes that line as usual, so an unusual line is never misread, only decoded. */

typedef struct {
    const u8 *b;
    size_t i, e;
} JsonCursor;

static void jc_ws(JsonCursor *c) {
    while (c->i < c->e) {
        u8 x = c->b[c->i];
        if (x != ' ' && x != '\t' && x != '\n' && x != '\r') break;
        c->i++;
    }
}

/* a simple string at the cursor (on its opening quote); its body in [*bs, *be). ``escapes``: 0 for a
 * top-level key (an escaped key could spell a mapped name another way) */
static int jc_string(JsonCursor *c, size_t *bs, size_t *be, int escapes) {
    size_t i = c->i;
    if (i >= c->e || c->b[i] != '"') return 0;
    *bs = ++i;
    while (i < c->e) {
        u8 x = c->b[i];
        if (x == '"') {
            *be = i;
            c->i = i + 1;
            return 1;
        }
        if (x == '\\') {
            if (!escapes || i + 1 >= c->e) return 0;
            u8 y = c->b[i + 1];
            if (y != '"' && y != '\\' && y != '/' && y != 'b' && y != 'f' && y != 'n' && y != 'r' && y != 't') return 0;
            i += 2;
            continue;
        }
        if (x < 0x20 || x > 0x7e) return 0;
        i++;
    }
    return 0;
}

static int jc_digits(JsonCursor *c, size_t *n) {
    size_t start = c->i;
    while (c->i < c->e && c->b[c->i] >= '0' && c->b[c->i] <= '9') c->i++;
    *n += c->i - start;
    return c->i > start;
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)? with at most 15 digits in all */
static int jc_number(JsonCursor *c) {
    size_t n = 0;
    if (c->i < c->e && c->b[c->i] == '-') c->i++;
    if (c->i >= c->e) return 0;
    if (c->b[c->i] == '0') {
        c->i++;
        n = 1;
    } else if (!jc_digits(c, &n)) {
        return 0;
    }
    if (c->i < c->e && c->b[c->i] == '.') {
        c->i++;
        if (!jc_digits(c, &n)) return 0;
    }
    if (c->i < c->e && (c->b[c->i] == 'e' || c->b[c->i] == 'E')) return 0;
    return n <= 15;
}

static int jc_literal(JsonCursor *c, const char *word, size_t n) {
    if (c->e - c->i < n || memcmp(c->b + c->i, word, n) != 0) return 0;
    c->i += n;
    return 1;
}

static int jc_value(JsonCursor *c, int depth) {
    size_t bs, be;
    if (c->i >= c->e) return 0;
    u8 x = c->b[c->i];
    if (x == '"') return jc_string(c, &bs, &be, 1);
    if (x == 't') return jc_literal(c, "true", 4);
    if (x == 'f') return jc_literal(c, "false", 5);
    if (x == 'n') return jc_literal(c, "null", 4);
    if (x == '[' || x == '{') {
        u8 close = x == '[' ? ']' : '}';
        if (depth >= 8) return 0;
        c->i++;
        jc_ws(c);
        if (c->i < c->e && c->b[c->i] == close) {
            c->i++;
            return 1;
        }
        for (;;) {
            if (x == '{') {
                if (!jc_string(c, &bs, &be, 1)) return 0;
                jc_ws(c);
                if (c->i >= c->e || c->b[c->i] != ':') return 0;
                c->i++;
                jc_ws(c);
            }
            if (!jc_value(c, depth + 1)) return 0;
            jc_ws(c);
            if (c->i >= c->e) return 0;
            if (c->b[c->i] == ',') {
                c->i++;
                jc_ws(c);
                continue;
            }
            if (c->b[c->i] != close) return 0;
            c->i++;
            return 1;
        }
    }
    return jc_number(c);
}

/* 1 and the body's [*bs, *be) when line [s, e) is simple, else 0; names: content, repo, path, license */
static int jc_line(const u8 *b, size_t s, size_t e, const Py_buffer *names, size_t *bs, size_t *be) {
    JsonCursor c = {b, s, e};
    unsigned seen = 0;
    jc_ws(&c);
    if (c.i >= c.e || b[c.i] != '{') return 0;
    c.i++;
    jc_ws(&c);
    for (;;) {
        size_t ks, ke;
        if (!jc_string(&c, &ks, &ke, 0)) return 0;
        int which = -1;
        for (int k = 0; k < 4; k++)
            if ((size_t)names[k].len == ke - ks && memcmp(b + ks, names[k].buf, ke - ks) == 0) which = k;
        jc_ws(&c);
        if (c.i >= c.e || b[c.i] != ':') return 0;
        c.i++;
        jc_ws(&c);
        if (which >= 0) {
            if (seen & (1u << which)) return 0;
            seen |= 1u << which;
        }
        if (which == 0) {
            if (c.i >= c.e || b[c.i] != '"') return 0;
            int64_t close = string_end(b, c.i + 1, c.e);
            if (close < 0) return 0;
            *bs = c.i + 1;
            *be = (size_t)close;
            c.i = (size_t)close + 1;
        } else if (which == 1 || which == 2) {
            size_t vs, ve;
            if (!jc_string(&c, &vs, &ve, 1)) return 0;
        } else if (which == 3 && c.i < c.e && b[c.i] == 'n') {
            if (!jc_literal(&c, "null", 4)) return 0;
        } else if (which == 3) {
            size_t vs, ve;
            if (!jc_string(&c, &vs, &ve, 1)) return 0;
        } else if (!jc_value(&c, 1)) {
            return 0;
        }
        jc_ws(&c);
        if (c.i >= c.e) return 0;
        if (b[c.i] == ',') {
            c.i++;
            jc_ws(&c);
            continue;
        }
        if (b[c.i] != '}') return 0;
        c.i++;
        break;
    }
    jc_ws(&c);
    return c.i == c.e && (seen & 7u) == 7u;
}

static PyObject *py_json_lines_scan(PyObject *self, PyObject *args) {
    Py_buffer buf, starts, ends, names[4], status, h1, h2;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*y*w*w*w*", &buf, &starts, &ends, &names[0], &names[1], &names[2],
                          &names[3], &status, &h1, &h2))
        return NULL;
    size_t n = (size_t)starts.len / 8;
    const int64_t *s = starts.buf, *e = ends.buf;
    int ok = check(ends.len == starts.len && starts.len % 8 == 0, "starts and ends: int64 arrays of one length") &&
             check((size_t)status.len >= n && (size_t)h1.len >= n * 8 && (size_t)h2.len >= n * 8,
                   "status, h1 or h2 is too small");
    for (size_t d = 0; ok && d < n; d++)
        ok = check(s[d] >= 0 && s[d] <= e[d] && e[d] <= (int64_t)buf.len, "a range is outside buf");
    if (ok) {
        const u8 *b = buf.buf;
        u8 *st = status.buf;
        u64 *o1 = h1.buf, *o2 = h2.buf;
        Py_BEGIN_ALLOW_THREADS
        for (size_t d = 0; d < n; d++) {
            size_t bs = 0, be = 0;
            st[d] = (u8)jc_line(b, (size_t)s[d], (size_t)e[d], names, &bs, &be);
            o1[d] = st[d] ? xxh64(b, bs, be, 0) : 0;
            o2[d] = st[d] ? xxh64(b, bs, be, 1) : 0;
        }
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&buf);
    PyBuffer_Release(&starts);
    PyBuffer_Release(&ends);
    for (int k = 0; k < 4; k++) PyBuffer_Release(&names[k]);
    PyBuffer_Release(&status);
    PyBuffer_Release(&h1);
    PyBuffer_Release(&h2);
    if (!ok) return NULL;
    Py_RETURN_NONE;
}

/* ------------------------------------------- stream: the metrics of a chunk's ASCII texts in one pass
 * `ascii_text_stats` (preprocessing/filters/quality.py, `_ascii_columns`) reads the concatenation of a
 * chunk's non-empty ASCII texts once and gives, per text, what `file_metrics` and the quality rules
 * count of it: its alphanumeric characters (str.isalnum on ASCII: [0-9A-Za-z]), its lines as
 * str.splitlines cuts ASCII text (breaks \n, \r, \r\n as one, \v, \f, \x1c, \x1d, \x1e; a last line
 * without a break counts when not empty), the longest line and the characters of all lines (breaks
 * left out), and how many "\n" and "=" it holds (str.count). The numpy code beside it is the
 * reference (the same integers). */

static u8 ats_alnum[256];   /* 1 for [0-9A-Za-z] */
static u8 ats_special[256]; /* 2 "=", 3 "\n", 4 "\r", 5 another break, 0 the rest */

/* A text's line counts so far: where its current line starts, its lines, the longest, their
 * characters, its "\n" breaks, its "=" bytes. */
typedef struct {
    int64_t line_start, lines, mx, chars, nl, eq;
} AtsCounts;

/* The line break at b[q] (ats_special k, 3 to 5) ends the current line: counted; a "\r\n" is one
 * break. Returns the break's last byte (q, or q + 1 for "\r\n"): the next line starts after it. */
INLINE int64_t ats_break(AtsCounts *c, const u8 *b, int64_t q, int64_t end, u8 k) {
    int64_t len = q - c->line_start;
    c->lines++;
    c->chars += len;
    if (len > c->mx) c->mx = len;
    if (k == 3) {
        c->nl++;
    } else if (k == 4 && q + 1 < end && b[q + 1] == '\n') {
        q++;
        c->nl++;
    }
    c->line_start = q + 1;
    return q;
}

static void ats_init(void) {
    if (ats_alnum['a']) return;
    for (int c = '0'; c <= '9'; c++) ats_alnum[c] = 1;
    for (int c = 'A'; c <= 'Z'; c++) ats_alnum[c] = 1;
    for (int c = 'a'; c <= 'z'; c++) ats_alnum[c] = 1;
    ats_special['='] = 2;
    ats_special['\n'] = 3;
    ats_special['\r'] = 4;
    ats_special[0x0B] = ats_special[0x0C] = ats_special[0x1C] = ats_special[0x1D] = ats_special[0x1E] = 5;
}

static PyObject *py_ascii_text_stats(PyObject *self, PyObject *args) {
    Py_buffer buf, ends, out[6];
    PyObject *text;
    (void)self;
    if (!PyArg_ParseTuple(args, "Oy*w*w*w*w*w*w*", &text, &ends, &out[0], &out[1], &out[2], &out[3], &out[4],
                          &out[5]))
        return NULL;
    /* the texts: a bytes-like object, or an ASCII str (read in its own buffer: no encoded copy) */
    int got = PyUnicode_Check(text) ? (PyUnicode_IS_ASCII(text)
                                           ? PyBuffer_FillInfo(&buf, NULL, PyUnicode_1BYTE_DATA(text),
                                                               PyUnicode_GET_LENGTH(text), 1, PyBUF_SIMPLE)
                                           : (PyErr_SetString(PyExc_ValueError, "buf: bytes or an ASCII str"), -1))
                                    : PyObject_GetBuffer(text, &buf, PyBUF_SIMPLE);
    if (got < 0) {
        PyBuffer_Release(&ends);
        for (int k = 0; k < 6; k++) PyBuffer_Release(&out[k]);
        return NULL;
    }
    size_t n = (size_t)ends.len / 8;
    const int64_t *e = ends.buf;
    int ok = check(ends.len % 8 == 0, "ends: an int64 array");
    for (int k = 0; ok && k < 6; k++) ok = check((size_t)out[k].len >= n * 8, "an output array is too small");
    for (size_t d = 0; ok && d < n; d++)
        ok = check(e[d] >= (d ? e[d - 1] : 0) && e[d] <= (int64_t)buf.len, "ends: not ascending within buf");
    if (ok) {
        const u8 *b = buf.buf;
        int64_t *o_alnum = out[0].buf, *o_lines = out[1].buf, *o_max = out[2].buf, *o_chars = out[3].buf,
                *o_nl = out[4].buf, *o_eq = out[5].buf;
        ats_init();
        Py_BEGIN_ALLOW_THREADS
        int64_t s = 0;
        for (size_t d = 0; d < n; d++) {
            int64_t end = e[d], alnum = 0;
            AtsCounts c = {s, 0, 0, 0, 0, 0};
            int64_t i = s;
#ifdef __SSE2__
            /* 16 bytes at a time: the alphanumerics counted from three range masks, the special bytes
             * ("=", the breaks) found by a mask and taken one by one as the byte loop below takes them */
            const __m128i c0 = _mm_set1_epi8('0' - 1), c9 = _mm_set1_epi8('9' + 1), cA = _mm_set1_epi8('A' - 1),
                          cZ = _mm_set1_epi8('Z' + 1), ca = _mm_set1_epi8('a' - 1), cz = _mm_set1_epi8('z' + 1),
                          ceq = _mm_set1_epi8('='), cnl = _mm_set1_epi8('\n'), ccr = _mm_set1_epi8('\r'),
                          cvt = _mm_set1_epi8(0x0B), cff = _mm_set1_epi8(0x0C), c1b = _mm_set1_epi8(0x1B),
                          c1f = _mm_set1_epi8(0x1F), one = _mm_set1_epi8(1);
            int64_t skip = s; /* a special byte before this position was taken already (the "\n" of "\r\n") */
            for (; i + 16 <= end; i += 16) {
                __m128i v = _mm_loadu_si128((const __m128i *)(b + i));
                __m128i al = _mm_or_si128(
                    _mm_or_si128(_mm_and_si128(_mm_cmpgt_epi8(v, c0), _mm_cmplt_epi8(v, c9)),
                                 _mm_and_si128(_mm_cmpgt_epi8(v, cA), _mm_cmplt_epi8(v, cZ))),
                    _mm_and_si128(_mm_cmpgt_epi8(v, ca), _mm_cmplt_epi8(v, cz)));
                /* (their count: the 0/1 bytes summed by _mm_sad_epu8, no popcount call) */
                __m128i sums = _mm_sad_epu8(_mm_and_si128(al, one), _mm_setzero_si128());
                alnum += _mm_cvtsi128_si32(sums) + _mm_cvtsi128_si32(_mm_srli_si128(sums, 8));
                __m128i sp = _mm_or_si128(
                    _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, ceq), _mm_cmpeq_epi8(v, cnl)),
                                 _mm_or_si128(_mm_cmpeq_epi8(v, ccr), _mm_cmpeq_epi8(v, cvt))),
                    _mm_or_si128(_mm_cmpeq_epi8(v, cff), _mm_and_si128(_mm_cmpgt_epi8(v, c1b), _mm_cmplt_epi8(v, c1f))));
                unsigned m = (unsigned)_mm_movemask_epi8(sp);
                while (m) {
                    int64_t q = i + __builtin_ctz(m);
                    m &= m - 1;
                    if (q < skip) continue;
                    u8 k = ats_special[b[q]];
                    if (k == 2) {
                        c.eq++;
                        continue;
                    }
                    skip = ats_break(&c, b, q, end, k) + 1;
                }
            }
            if (i < skip) i = skip; /* (the "\n" of a "\r\n" that ended the last block) */
#endif
            for (; i < end; i++) {
                u8 ch = b[i];
                alnum += ats_alnum[ch]; /* (no branch: letters and the rest alternate unpredictably) */
                u8 k = ats_special[ch];
                if (k == 0) continue;
                if (k == 2) {
                    c.eq++;
                    continue;
                }
                i = ats_break(&c, b, i, end, k);
            }
            if (c.line_start < end) { /* the last line, with no break after it */
                int64_t len = end - c.line_start;
                c.lines++;
                c.chars += len;
                if (len > c.mx) c.mx = len;
            }
            o_alnum[d] = alnum;
            o_lines[d] = c.lines;
            o_max[d] = c.mx;
            o_chars[d] = c.chars;
            o_nl[d] = c.nl;
            o_eq[d] = c.eq;
            s = end;
        }
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&buf);
    PyBuffer_Release(&ends);
    for (int k = 0; k < 6; k++) PyBuffer_Release(&out[k]);
    if (!ok) return NULL;
    Py_RETURN_NONE;
}

/* ------------------------------------------- stream: the records of simple JSON lines, decoded here
 * `json_lines_decode` (preprocessing/readers/jsonl.py, `JsonlReader.decode_lines`) gives the record of
 * each line of json_lines_scan's simple form whose strings are ASCII: what orjson.loads of the line,
 * the four mapped fields popped and the record's checks give (the same values, types and key order:
 * an object's repeated key keeps its first place and its last value, as orjson's dict), with no
 * Python step per line. Strings: raw bytes 0x20..0x7f, the two-byte escapes and \u escapes of
 * 1..127 (anything else, e.g. \u0000, a surrogate or raw UTF-8, is not decoded here); numbers of
 * at most 15 digits without an exponent (an int, or a float correctly rounded, as orjson's);
 * literals, arrays and objects of those (depth at most 8). A line outside that form gives None: the
 * caller decodes it as before (so an unusual line gets the answer it always had). */

/* The first position in [i, e) of a byte that ends a run of plain string bytes: a quote, a
 * backslash, a control character or a non-ASCII byte (e when none); 16 bytes at a time with SSE2
 * (a signed compare below 0x20 finds both the control and the non-ASCII bytes). */
static size_t jd_plain_run(const u8 *b, size_t i, size_t e) {
#ifdef __SSE2__
    const __m128i quote = _mm_set1_epi8('"'), slash = _mm_set1_epi8('\\'), low = _mm_set1_epi8(0x20);
    while (i + 16 <= e) {
        __m128i v = _mm_loadu_si128((const __m128i *)(b + i));
        __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, slash)),
                                 _mm_cmplt_epi8(v, low));
        int mask = _mm_movemask_epi8(m);
        if (mask) return i + (size_t)__builtin_ctz((unsigned)mask);
        i += 16;
    }
#endif
    while (i < e && b[i] != '"' && b[i] != '\\' && b[i] >= 0x20 && b[i] < 0x80) i++;
    return i;
}

/* The escape at b[i] (a backslash, i + 1 < e): the ASCII byte it stands for and its length in
 * *len, or 0 when it is not one decoded here (a \u escape outside 1..127, an invalid one). */
static u8 jd_escape(const u8 *b, size_t i, size_t e, size_t *len) {
    u8 y = b[i + 1];
    if (y != 'u') {
        *len = 2;
        return SHORT_ESCAPE[y];
    }
    if (i + 5 >= e) return 0;
    int h0 = HEX[b[i + 2]], h1 = HEX[b[i + 3]], h2 = HEX[b[i + 4]], h3 = HEX[b[i + 5]];
    if ((h0 | h1 | h2 | h3) < 0) return 0;
    int v = (h0 << 12) | (h1 << 8) | (h2 << 4) | h3;
    *len = 6;
    return v >= 1 && v <= 0x7f ? (u8)v : 0;
}

/* 1: the string at the cursor (on its quote) decoded into *out (a new reference); 0: not of the
 * form; -1: a Python error. */
static int jd_string(JsonCursor *c, PyObject **out) {
    const u8 *b = c->b;
    size_t i = c->i, e = c->e, n = 0, len;
    if (i >= e || b[i] != '"') return 0;
    size_t start = ++i;
    int escaped = 0;
    for (;;) {
        size_t j = jd_plain_run(b, i, e);
        n += j - i;
        i = j;
        if (i >= e) return 0;
        if (b[i] == '"') break;
        if (b[i] != '\\' || i + 1 >= e || !jd_escape(b, i, e, &len)) return 0;
        escaped = 1;
        i += len;
        n++;
    }
    size_t end = i;
    PyObject *s = PyUnicode_New((Py_ssize_t)n, 127);
    if (s == NULL) return -1;
    u8 *d = PyUnicode_1BYTE_DATA(s);
    if (!escaped) {
        memcpy(d, b + start, n);
    } else {
        for (size_t j = start; j < end;) {
            size_t k = jd_plain_run(b, j, end);
            memcpy(d, b + j, k - j);
            d += k - j;
            if (k >= end) break;
            *d++ = jd_escape(b, k, e, &len);
            j = k + len;
        }
    }
    c->i = end + 1;
    *out = s;
    return 1;
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)? with at most 15 digits (as jc_number): an int, or a float */
static int jd_number(JsonCursor *c, PyObject **out) {
    const u8 *b = c->b;
    size_t start = c->i;
    if (!jc_number(c)) return 0;
    size_t n = c->i - start;
    int is_float = 0;
    long long v = 0;
    for (size_t j = start; j < c->i; j++) {
        if (b[j] == '.') is_float = 1;
        else if (b[j] != '-') v = v * 10 + (b[j] - '0');
    }
    if (!is_float) {
        *out = PyLong_FromLongLong(b[start] == '-' ? -v : v);
        return *out == NULL ? -1 : 1;
    }
    char buf[24];
    if (n >= sizeof buf) return 0;
    memcpy(buf, b + start, n);
    buf[n] = 0;
    double x = PyOS_string_to_double(buf, NULL, NULL);
    if (x == -1.0 && PyErr_Occurred()) return -1;
    *out = PyFloat_FromDouble(x);
    return *out == NULL ? -1 : 1;
}

static int jd_value(JsonCursor *c, PyObject **out, int depth) {
    if (c->i >= c->e) return 0;
    u8 x = c->b[c->i];
    if (x == '"') return jd_string(c, out);
    if (x == 't' || x == 'f' || x == 'n') {
        PyObject *v = x == 't' ? Py_True : x == 'f' ? Py_False : Py_None;
        if (!jc_literal(c, x == 't' ? "true" : x == 'f' ? "false" : "null", x == 'f' ? 5 : 4)) return 0;
        Py_INCREF(v);
        *out = v;
        return 1;
    }
    if (x != '[' && x != '{') return jd_number(c, out);
    if (depth >= 8) return 0;
    int list = x == '[';
    u8 close = list ? ']' : '}';
    PyObject *box = list ? PyList_New(0) : PyDict_New();
    if (box == NULL) return -1;
    c->i++;
    jc_ws(c);
    if (c->i < c->e && c->b[c->i] == close) {
        c->i++;
        *out = box;
        return 1;
    }
    for (;;) {
        PyObject *k = NULL, *v = NULL;
        int r = 1;
        if (!list) {
            r = jd_string(c, &k);
            if (r == 1) {
                jc_ws(c);
                if (c->i >= c->e || c->b[c->i] != ':') r = 0;
                else {
                    c->i++;
                    jc_ws(c);
                }
            }
        }
        if (r == 1) r = jd_value(c, &v, depth + 1);
        if (r == 1) r = (list ? PyList_Append(box, v) : PyDict_SetItem(box, k, v)) < 0 ? -1 : 1;
        Py_XDECREF(k);
        Py_XDECREF(v);
        if (r == 1) {
            jc_ws(c);
            if (c->i >= c->e) r = 0;
            else if (c->b[c->i] == ',') {
                c->i++;
                jc_ws(c);
                continue;
            } else if (c->b[c->i] != close) {
                r = 0;
            } else {
                c->i++;
                *out = box;
                return 1;
            }
        }
        Py_DECREF(box);
        return r;
    }
}

/* The extra fields' names met in one call (most lines of a dump have the same few): each made once. */
#define JD_KEYS 16
typedef struct {
    int n;
    PyObject *key[JD_KEYS];
} JdKeys;

/* the str of the top-level key b[0:n) (printable ASCII), a new reference (NULL: a Python error) */
static PyObject *jd_key(JdKeys *keys, const u8 *b, size_t n) {
    for (int q = 0; q < keys->n; q++) {
        PyObject *k = keys->key[q];
        if ((size_t)PyUnicode_GET_LENGTH(k) == n && memcmp(PyUnicode_1BYTE_DATA(k), b, n) == 0) {
            Py_INCREF(k);
            return k;
        }
    }
    PyObject *k = PyUnicode_New((Py_ssize_t)n, 127);
    if (k == NULL) return NULL;
    memcpy(PyUnicode_1BYTE_DATA(k), b, n);
    if (keys->n < JD_KEYS) {
        Py_INCREF(k);
        keys->key[keys->n++] = k;
    }
    return k;
}

/* 1 and the record's parts (new references) when line [s, e) is simple and ASCII, 0 when not, -1 on error */
static int jd_line(const u8 *b, size_t s, size_t e, const Py_buffer *names, JdKeys *keys, PyObject **field,
                   PyObject **extra) {
    JsonCursor c = {b, s, e};
    unsigned seen = 0;
    int r = 0;
    field[0] = field[1] = field[2] = field[3] = NULL;
    PyObject *rest = PyDict_New();
    if (rest == NULL) return -1;
    jc_ws(&c);
    if (c.i >= c.e || b[c.i] != '{') goto fail;
    c.i++;
    jc_ws(&c);
    if (c.i < c.e && b[c.i] == '}') goto fail; /* {}: no record */
    for (;;) {
        PyObject *k = NULL, *v = NULL;
        /* a top-level key: no escape at all (an escaped key could spell a mapped name another way) */
        r = 0;
        if (c.i >= c.e || b[c.i] != '"') goto fail;
        size_t ks = c.i + 1, ke = jd_plain_run(b, ks, c.e), kl = ke - ks;
        if (ke >= c.e || b[ke] != '"') goto fail;
        c.i = ke + 1;
        int which = -1;
        for (int q = 0; q < 4; q++)
            if ((size_t)names[q].len == kl && memcmp(b + ks, names[q].buf, kl) == 0) which = q;
        jc_ws(&c);
        if (c.i >= c.e || b[c.i] != ':') goto fail;
        c.i++;
        jc_ws(&c);
        if (which < 0 && (k = jd_key(keys, b + ks, kl)) == NULL) {
            r = -1;
            goto fail;
        }
        if (which >= 0) {
            if (seen & (1u << which)) {
                r = 0;
                goto fail;
            }
            seen |= 1u << which;
            if (which == 3 && c.i < c.e && b[c.i] == 'n') {
                if (!jc_literal(&c, "null", 4)) {
                    r = 0;
                    goto fail;
                }
            } else if ((r = jd_string(&c, &field[which])) != 1) {
                goto fail;
            }
        } else {
            if ((r = jd_value(&c, &v, 1)) != 1) {
                Py_DECREF(k);
                goto fail;
            }
            r = PyDict_SetItem(rest, k, v) < 0 ? -1 : 1;
            Py_DECREF(k);
            Py_DECREF(v);
            if (r < 0) goto fail;
        }
        jc_ws(&c);
        r = 0;
        if (c.i >= c.e) goto fail;
        if (b[c.i] == ',') {
            c.i++;
            jc_ws(&c);
            continue;
        }
        if (b[c.i] != '}') goto fail;
        c.i++;
        break;
    }
    jc_ws(&c);
    r = 0;
    if (c.i != c.e || (seen & 7u) != 7u) goto fail;
    *extra = rest;
    return 1;
fail:
    for (int q = 0; q < 4; q++) Py_CLEAR(field[q]);
    Py_DECREF(rest);
    return r;
}

static PyObject *py_json_lines_decode(PyObject *self, PyObject *args) {
    PyObject *lines, *cls, *slots, *source;
    Py_buffer names[4];
    Py_ssize_t max_bytes;
    (void)self;
    if (!PyArg_ParseTuple(args, "Oy*y*y*y*OOUn", &lines, &names[0], &names[1], &names[2], &names[3], &cls, &slots,
                          &source, &max_bytes))
        return NULL;
    /* the lines: a list of (line number, bytes), or a frame's (data, ends, first line number): line d is
     * data[ends[d-1] + 1:ends[d]] (ends: the positions of the lines' newlines, a list of ints) */
    PyObject *data = NULL, *ends = NULL;
    Py_ssize_t first = 0;
    int frame = PyTuple_Check(lines);
    if (frame && !PyArg_ParseTuple(lines, "O!O!n", &PyBytes_Type, &data, &PyList_Type, &ends, &first)) {
        for (int q = 0; q < 4; q++) PyBuffer_Release(&names[q]);
        return NULL;
    }
    if (!frame && !PyList_Check(lines)) {
        PyErr_SetString(PyExc_TypeError, "lines: a list of (line number, bytes) pairs or (data, ends, first)");
        for (int q = 0; q < 4; q++) PyBuffer_Release(&names[q]);
        return NULL;
    }
    int slots_ok = slots == Py_None || (PyType_Check(cls) && PyTuple_Check(slots) && PyTuple_GET_SIZE(slots) == 8);
    for (int q = 0; slots_ok && slots != Py_None && q < 8; q++)
        slots_ok = Py_TYPE(PyTuple_GET_ITEM(slots, q))->tp_descr_set != NULL;
    PyObject *empty = slots_ok ? PyTuple_New(0) : NULL;
    if (!slots_ok || empty == NULL) {
        if (!slots_ok) PyErr_SetString(PyExc_TypeError, "slots: None, or cls's 8 field descriptors");
        for (int q = 0; q < 4; q++) PyBuffer_Release(&names[q]);
        return NULL;
    }
    Py_ssize_t n = frame ? PyList_GET_SIZE(ends) : PyList_GET_SIZE(lines), start = 0;
    PyObject *out = PyList_New(n);
    JdKeys keys;
    keys.n = 0;
    for (Py_ssize_t d = 0; out != NULL && d < n; d++) {
        PyObject *rec = Py_None, *lineno;
        const u8 *lb;
        Py_ssize_t ll;
        if (frame) {
            Py_ssize_t end = PyLong_AsSsize_t(PyList_GET_ITEM(ends, d));
            if (end == -1 && PyErr_Occurred()) {
                Py_CLEAR(out);
                break;
            }
            if (end < start || end >= PyBytes_GET_SIZE(data)) {
                PyErr_SetString(PyExc_ValueError, "ends: not ascending within data");
                Py_CLEAR(out);
                break;
            }
            lb = (const u8 *)PyBytes_AS_STRING(data) + start;
            ll = end - start;
            start = end + 1;
            if ((lineno = PyLong_FromSsize_t(first + d)) == NULL) {
                Py_CLEAR(out);
                break;
            }
        } else {
            PyObject *pair = PyList_GET_ITEM(lines, d);
            if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 || !PyLong_Check(PyTuple_GET_ITEM(pair, 0)) ||
                !PyBytes_Check(PyTuple_GET_ITEM(pair, 1))) {
                PyErr_SetString(PyExc_TypeError, "lines: a list of (line number, bytes) pairs");
                Py_CLEAR(out);
                break;
            }
            lineno = PyTuple_GET_ITEM(pair, 0);
            Py_INCREF(lineno);
            lb = (const u8 *)PyBytes_AS_STRING(PyTuple_GET_ITEM(pair, 1));
            ll = PyBytes_GET_SIZE(PyTuple_GET_ITEM(pair, 1));
        }
        long no = PyLong_AsLong(lineno);
        if (no == -1 && PyErr_Occurred()) {
            Py_DECREF(lineno);
            Py_CLEAR(out);
            break;
        }
        PyObject *field[4], *extra = NULL;
        int r = no == 1 ? 0 : /* (a byte order mark may open line 1) */
                jd_line(lb, 0, (size_t)ll, names, &keys, field, &extra);
        if (r < 0) {
            Py_DECREF(lineno);
            Py_CLEAR(out);
            break;
        }
        if (r == 1) {
            PyObject *content = field[0];
            Py_ssize_t len = PyUnicode_GET_LENGTH(content), k = 0;
            const u8 *t = PyUnicode_1BYTE_DATA(content);
            while (k < len && Py_UNICODE_ISSPACE(t[k])) k++;
            if (len == 0 || k == len || len > max_bytes) {
                r = 0; /* no record: the caller's decode says why */
            } else {
                PyObject *lic = field[3];
                if (lic == NULL || PyUnicode_GET_LENGTH(lic) == 0) lic = Py_None; /* `lic or None` */
                PyObject *argv[8] = {content, field[1], field[2], lic, extra, source, lineno, Py_None};
                if (slots == Py_None) {
                    rec = PyObject_Vectorcall(cls, argv, 7, NULL);
                } else { /* the record made empty and its 8 fields set through their slots' descriptors */
                    rec = ((PyTypeObject *)cls)->tp_new((PyTypeObject *)cls, empty, NULL);
                    for (int q = 0; rec != NULL && q < 8; q++) {
                        PyObject *descr = PyTuple_GET_ITEM(slots, q);
                        if (Py_TYPE(descr)->tp_descr_set(descr, rec, argv[q]) < 0) Py_CLEAR(rec);
                    }
                }
            }
            for (int q = 0; q < 4; q++) Py_XDECREF(field[q]);
            Py_DECREF(extra);
            if (r == 1 && rec == NULL) {
                Py_DECREF(lineno);
                Py_CLEAR(out);
                break;
            }
            if (r == 0) rec = Py_None;
        }
        Py_DECREF(lineno);
        if (rec == Py_None) Py_INCREF(rec);
        PyList_SET_ITEM(out, d, rec);
    }
    for (int q = 0; q < 4; q++) PyBuffer_Release(&names[q]);
    for (int q = 0; q < keys.n; q++) Py_DECREF(keys.key[q]);
    Py_DECREF(empty);
    return out;
}

/* ------------------------------------------- stream: the filters' joined text, lowercased
 * `ascii_lower` (preprocessing/filters/joined.py, `JoinedText.of`) gives the bytes of an ASCII str
 * with A-Z lowercased (what bytes.lower does to ASCII), read from the str's own buffer: no
 * encoded copy, 16 bytes at a time with SSE2. */
static PyObject *py_ascii_lower(PyObject *self, PyObject *arg) {
    (void)self;
    if (!PyUnicode_Check(arg) || !PyUnicode_IS_ASCII(arg)) {
        PyErr_SetString(PyExc_ValueError, "ascii_lower: an ASCII str");
        return NULL;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(arg), i = 0;
    const u8 *src = PyUnicode_1BYTE_DATA(arg);
    PyObject *out = PyBytes_FromStringAndSize(NULL, n);
    if (out == NULL) return NULL;
    u8 *dst = (u8 *)PyBytes_AS_STRING(out);
#ifdef __SSE2__
    const __m128i before_a = _mm_set1_epi8('A' - 1), after_z = _mm_set1_epi8('Z' + 1), bit = _mm_set1_epi8(0x20);
    for (; i + 16 <= n; i += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(src + i));
        __m128i upper = _mm_and_si128(_mm_cmpgt_epi8(v, before_a), _mm_cmplt_epi8(v, after_z));
        _mm_storeu_si128((__m128i *)(dst + i), _mm_or_si128(v, _mm_and_si128(upper, bit)));
    }
#endif
    for (; i < n; i++) {
        u8 c = src[i];
        dst[i] = c >= 'A' && c <= 'Z' ? (u8)(c | 0x20) : c;
    }
    return out;
}

/* ------------------------------------------- the reader: where a buffer's lines end
 * `newline_ends` (preprocessing/readers/jsonl.py, `FrameLines.ends`): the positions of the newlines
 * of a decompressed piece, memchr from one to the next, straight into the list the reader keeps
 * (numpy's compare, nonzero and tolist passes over the bytes before). */
static PyObject *py_newline_ends(PyObject *self, PyObject *arg) {
    Py_buffer buf;
    (void)self;
    if (PyObject_GetBuffer(arg, &buf, PyBUF_SIMPLE) < 0) return NULL;
    PyObject *out = PyList_New(0);
    const char *b = buf.buf, *p = b, *e = b + buf.len;
    while (out != NULL && p < e) {
        const char *q = memchr(p, '\n', (size_t)(e - p));
        if (q == NULL) break;
        PyObject *pos = PyLong_FromSsize_t(q - b);
        if (pos == NULL || PyList_Append(out, pos) < 0) Py_CLEAR(out);
        Py_XDECREF(pos);
        p = q + 1;
    }
    PyBuffer_Release(&buf);
    return out;
}

/* ------------------------------------------- stream: the filters' words, counted per text
 * `ascii_word_counts` (preprocessing/filters/joined.py, `PatternSet.counts`): per ASCII text and
 * per pattern, text.lower().count(pattern), from one pass of an Aho-Corasick automaton built in
 * Python (`word_automaton`: a DFA over byte classes, A-Z in the class of a-z, so the text is
 * lowercased as it is read), over each str's own buffer (no join, no lowercased copy). An entry of
 * `table` is the next state << shift (a row's start); the states where patterns end are the last
 * ones, from `first_out` on, and the patterns ending in state s are
 * out_ids[out_start[s]:out_start[s + 1]]. A pattern's occurrence is counted when it starts at or
 * after the end of the last one counted (str.count: no overlaps, left to right); `last` holds
 * those ends in one running offset over the texts, so it needs no reset between texts (an end is
 * never past the text it is in). Two texts are read at once, a byte of each in turn: each byte
 * waits for the table entry the byte before gave, and the two chains of loads overlap. */
typedef struct {
    const int32_t *ostart, *oid, *plen;
    int shift;
} WcOut;

INLINE void wc_emit(const WcOut *o, int64_t *row, int64_t *last, int32_t st, int64_t end) {
    int32_t s = st >> o->shift;
    for (int32_t j = o->ostart[s]; j < o->ostart[s + 1]; j++) {
        int32_t p = o->oid[j];
        if (end - o->plen[p] >= last[p]) {
            row[p]++;
            last[p] = end;
        }
    }
}

/* the rest of one text from byte i on, in state st */
INLINE void wc_tail(const WcOut *o, const int32_t *tab, const u8 *cls, int32_t from, const u8 *b, Py_ssize_t i,
                    Py_ssize_t len, int32_t st, int64_t *row, int64_t *last, int64_t offset) {
    for (; i < len; i++) {
        st = tab[st + cls[b[i]]];
        if (st >= from) wc_emit(o, row, last, st, offset + i + 1);
    }
}

static PyObject *py_ascii_word_counts(PyObject *self, PyObject *args) {
    PyObject *texts;
    Py_buffer classes, table, out_start, out_ids, lengths, counts;
    int shift;
    (void)self;
    if (!PyArg_ParseTuple(args, "Oy*y*y*y*y*iw*", &texts, &classes, &table, &out_start, &out_ids, &lengths, &shift,
                          &counts))
        return NULL;
    PyObject *seq = PySequence_Fast(texts, "texts: a list of ASCII str");
    Py_buffer *bufs[] = {&classes, &table, &out_start, &out_ids, &lengths, &counts};
    int64_t *last = NULL;
    int ok = seq != NULL;
    Py_ssize_t n = ok ? PySequence_Fast_GET_SIZE(seq) : 0;
    size_t k = (size_t)lengths.len / 4, states = (size_t)out_start.len / 4 - (out_start.len >= 4),
           n_ids = (size_t)out_ids.len / 4, cells = (size_t)table.len / 4, first_out = 0;
    const int32_t *tab = table.buf, *ostart = out_start.buf, *oid = out_ids.buf, *plen = lengths.buf;
    const u8 *cls = classes.buf;
    ok = ok && check(classes.len == 256, "classes: 256 bytes") && check(shift >= 0 && shift < 16, "shift: 0..15")
         && check(table.len % 4 == 0 && lengths.len % 4 == 0 && out_ids.len % 4 == 0 && out_start.len % 4 == 0
                      && states >= 1 && cells == states << shift, "table: states << shift int32, out_start: states + 1")
         && check((size_t)counts.len >= (size_t)n * k * 8, "counts: too small (texts * patterns int64)");
    /* every entry a row of the table; every class a column; every output a pattern; the states
     * with outputs last */
    for (size_t i = 0; ok && i < cells; i++)
        ok = check(tab[i] >= 0 && (size_t)tab[i] < cells && (tab[i] & ((1 << shift) - 1)) == 0,
                   "table: an entry that is no state");
    for (size_t i = 0; ok && i < 256; i++) ok = check(cls[i] < (1u << shift), "classes: a class past the row");
    for (size_t s = 0; ok && s < states; s++)
        ok = check(ostart[s] >= 0 && ostart[s] <= ostart[s + 1] && (size_t)ostart[s + 1] <= n_ids, "out_start: not ascending");
    while (ok && first_out < states && ostart[first_out + 1] == ostart[first_out]) first_out++;
    for (size_t s = first_out; ok && s < states; s++)
        ok = check(ostart[s + 1] > ostart[s], "out_start: a state without outputs after one with");
    for (size_t i = 0; ok && i < n_ids; i++) ok = check(oid[i] >= 0 && (size_t)oid[i] < k, "out_ids: not a pattern");
    for (size_t p = 0; ok && p < k; p++) ok = check(plen[p] > 0, "lengths: a pattern of no bytes");
    for (Py_ssize_t d = 0; ok && d < n; d++) {
        PyObject *t = PySequence_Fast_GET_ITEM(seq, d);
        ok = check(PyUnicode_Check(t) && PyUnicode_IS_ASCII(t), "texts: a list of ASCII str");
    }
    if (ok && k) {
        last = PyMem_Calloc(2 * k, sizeof(int64_t)); /* one running offset per lane */
        if (last == NULL) {
            PyErr_NoMemory();
            ok = 0;
        }
    }
    if (ok && k) {
        const WcOut o = {ostart, oid, plen, shift};
        const int32_t from = (int32_t)(first_out << shift);
        int64_t *cnt = counts.buf, off0 = 0, off1 = 0, *last0 = last, *last1 = last + k;
        memset(cnt, 0, (size_t)n * k * 8);
        Py_ssize_t d = 0;
        for (; d + 1 < n; d += 2) {
            PyObject *t0 = PySequence_Fast_GET_ITEM(seq, d), *t1 = PySequence_Fast_GET_ITEM(seq, d + 1);
            const u8 *b0 = PyUnicode_1BYTE_DATA(t0), *b1 = PyUnicode_1BYTE_DATA(t1);
            Py_ssize_t len0 = PyUnicode_GET_LENGTH(t0), len1 = PyUnicode_GET_LENGTH(t1), m = len0 < len1 ? len0 : len1, i;
            int64_t *row0 = cnt + (size_t)d * k, *row1 = row0 + k;
            int32_t st0 = 0, st1 = 0;
            for (i = 0; i < m; i++) {
                st0 = tab[st0 + cls[b0[i]]];
                st1 = tab[st1 + cls[b1[i]]];
                if (st0 >= from) wc_emit(&o, row0, last0, st0, off0 + i + 1);
                if (st1 >= from) wc_emit(&o, row1, last1, st1, off1 + i + 1);
            }
            wc_tail(&o, tab, cls, from, b0, i, len0, st0, row0, last0, off0);
            wc_tail(&o, tab, cls, from, b1, i, len1, st1, row1, last1, off1);
            off0 += len0;
            off1 += len1;
        }
        if (d < n) {
            PyObject *t = PySequence_Fast_GET_ITEM(seq, d);
            wc_tail(&o, tab, cls, from, PyUnicode_1BYTE_DATA(t), 0, PyUnicode_GET_LENGTH(t), 0, cnt + (size_t)d * k,
                    last0, off0);
        }
    }
    PyMem_Free(last);
    Py_XDECREF(seq);
    for (int i = 0; i < 6; i++) PyBuffer_Release(bufs[i]);
    if (!ok) return NULL;
    Py_RETURN_NONE;
}

/* ------------------------------------------- stream: exact dedup's table
 * `hashset_add` (preprocessing/dedup/exact.py, `HashSet64`): the keys (nonzero uint64), in order,
 * into an open-addressing table of 2^b uint64 slots (0: empty), each key's first slot the top b
 * bits of key * 0x9E3779B97F4A7C15, then the next ones (wrapping); new[i] = 1 where key i was
 * absent (its first occurrence, also within the keys: a repeat finds it). Returns how many were
 * added. The caller keeps the load at or below one half; a full table is a ValueError (the keys
 * before the one that found no slot are in). */
static PyObject *py_hashset_add(PyObject *self, PyObject *args) {
    Py_buffer table, keys, new;
    (void)self;
    if (!PyArg_ParseTuple(args, "w*y*w*", &table, &keys, &new)) return NULL;
    size_t slots = (size_t)table.len / 8, n = (size_t)keys.len / 8;
    int bits = 0;
    while (((size_t)1 << bits) < slots) bits++;
    int ok = check(table.len % 8 == 0 && keys.len % 8 == 0, "table, keys: uint64 arrays")
             && check(slots >= 2 && ((size_t)1 << bits) == slots, "table: a power of two slots (2 or more)")
             && check((size_t)new.len >= n, "new: too small (one byte per key)");
    u64 *t = table.buf;
    const u64 *k = keys.buf;
    u8 *fresh = new.buf;
    size_t added = 0;
    for (size_t i = 0; ok && i < n; i++) ok = check(k[i] != 0, "keys: 0 is the empty slot");
    const size_t mask = slots - 1;
    for (size_t i = 0; ok && i < n; i++) {
        u64 key = k[i];
        size_t s = (size_t)((key * 0x9E3779B97F4A7C15ULL) >> (64 - bits)), probes = 0;
        while (t[s] != 0 && t[s] != key && ++probes < slots) s = (s + 1) & mask;
        ok = check(probes < slots, "table: full (the caller keeps its load at or below one half)");
        fresh[i] = ok && t[s] == 0;
        if (ok && t[s] == 0) {
            t[s] = key;
            added++;
        }
    }
    PyBuffer_Release(&table);
    PyBuffer_Release(&keys);
    PyBuffer_Release(&new);
    if (!ok) return NULL;
    return PyLong_FromSize_t(added);
}
