/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tsr-tokenizer.c — SentencePiece BPE, encoding exactly as sentencepiece
 * does and decoding safely for streaming.
 *
 * Encoding: spaces become U+2581 (and one is put in front when the model
 * asks for a dummy prefix); user-defined pieces are cut out whole by a
 * longest match and never merged further; everything else starts as one
 * symbol per UTF-8 character; then the adjacent pair whose concatenation is
 * a piece with the highest score is merged, leftmost first on equal scores,
 * until no pair is a piece; symbols that are not pieces become their UTF-8
 * bytes as <0xXX> pieces.
 */
#include "tsr-tokenizer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tsr-error.h"

#define SPACE_MARK "\xe2\x96\x81"   /* U+2581 */
#define SPACE_MARK_LEN 3

typedef struct {
  uint32_t off, len;   /* into TsrTokenizer.text */
  float    score;
  uint8_t  type;
} Piece;

struct TsrTokenizer
{
  Piece    *pieces;
  size_t    n;
  char     *text;       /* all piece strings, back to back */
  /* Open-addressing map from piece string to id; slots hold id + 1. */
  uint32_t *slots;
  size_t    n_slots;
  int32_t   byte_ids[256];
  /* User-defined pieces by first byte, longest first. */
  int32_t  *user_ids;
  size_t    n_user;
  uint32_t  user_first[257];   /* user_ids[user_first[b] .. user_first[b+1]) start with b */
  int32_t   bos, eos, unk;
  int       add_dummy_prefix;
};

/* ==== Building ========================================================== */

static uint64_t
hash_bytes (const char *s, size_t n)
{
  uint64_t h = 1469598103934665603ULL;   /* FNV-1a */
  for (size_t i = 0; i < n; i++)
    h = (h ^ (unsigned char) s[i]) * 1099511628211ULL;
  return h;
}

static int32_t
lookup (const TsrTokenizer *t, const char *s, size_t n)
{
  size_t mask = t->n_slots - 1;
  for (size_t i = hash_bytes (s, n) & mask;; i = (i + 1) & mask)
    {
      uint32_t v = t->slots[i];
      const Piece *p;
      if (v == 0)
        return -1;
      p = &t->pieces[v - 1];
      if (p->len == n && memcmp (t->text + p->off, s, n) == 0)
        return (int32_t) (v - 1);
    }
}

static TsrTokenizer *
tokenizer_alloc (size_t n, size_t text_bytes)
{
  TsrTokenizer *t = calloc (1, sizeof *t);
  if (t == NULL)
    return NULL;
  t->pieces = calloc (n ? n : 1, sizeof *t->pieces);
  t->text = malloc (text_bytes ? text_bytes : 1);
  t->n_slots = 16;
  while (t->n_slots < 2 * n)
    t->n_slots <<= 1;
  t->slots = calloc (t->n_slots, sizeof *t->slots);
  if (t->pieces == NULL || t->text == NULL || t->slots == NULL)
    {
      tsr_tokenizer_free (t);
      return NULL;
    }
  t->n = n;
  t->bos = t->eos = t->unk = -1;
  return t;
}

static int
cmp_user (const void *a, const void *b, void *ctx)
{
  const TsrTokenizer *t = ctx;
  const Piece *x = &t->pieces[*(const int32_t *) a], *y = &t->pieces[*(const int32_t *) b];
  unsigned char fx = (unsigned char) t->text[x->off], fy = (unsigned char) t->text[y->off];
  if (fx != fy)
    return fx < fy ? -1 : 1;
  if (x->len != y->len)
    return x->len > y->len ? -1 : 1;
  return 0;
}

/* A small insertion sort: qsort_r is not in C11, and there are few
 * user-defined pieces (192 in InternLM2's vocabulary). */
static void
sort_user (TsrTokenizer *t)
{
  for (size_t i = 1; i < t->n_user; i++)
    {
      int32_t v = t->user_ids[i];
      size_t j = i;
      while (j > 0 && cmp_user (&t->user_ids[j - 1], &v, t) > 0)
        {
          t->user_ids[j] = t->user_ids[j - 1];
          j--;
        }
      t->user_ids[j] = v;
    }
}

static TsrStatus
finish (TsrTokenizer *t, TsrError *err)
{
  size_t n_user = 0;

  for (int b = 0; b < 256; b++)
    t->byte_ids[b] = -1;
  for (size_t id = 0; id < t->n; id++)
    {
      Piece *p = &t->pieces[id];
      size_t mask = t->n_slots - 1, i;
      if (p->type < TSR_PIECE_NORMAL || p->type > TSR_PIECE_BYTE)
        return tsr_error_set (err, TSR_EFORMAT, "Token %zu has an unknown type %d; this is not a "
                              "SentencePiece vocabulary Tessera can read.", id, p->type);
      if (p->type == TSR_PIECE_BYTE)
        {
          unsigned v;
          char tail;
          if (p->len != 6 || sscanf (t->text + p->off, "<0x%2X>%c", &v, &tail) != 1 || v > 255)
            return tsr_error_set (err, TSR_EFORMAT, "Byte token %zu is not of the form <0xXX>.", id);
          t->byte_ids[v] = (int32_t) id;
        }
      if (p->type == TSR_PIECE_USER_DEFINED && p->len > 0)
        n_user++;
      if (p->type == TSR_PIECE_UNKNOWN && t->unk < 0)
        t->unk = (int32_t) id;
      /* A later duplicate never shadows the first id, as in sentencepiece. */
      if (lookup (t, t->text + p->off, p->len) >= 0)
        continue;
      for (i = hash_bytes (t->text + p->off, p->len) & mask; t->slots[i] != 0; i = (i + 1) & mask)
        ;
      t->slots[i] = (uint32_t) id + 1;
    }

  t->user_ids = malloc ((n_user ? n_user : 1) * sizeof *t->user_ids);
  if (t->user_ids == NULL)
    return tsr_error_set (err, TSR_ENOMEM, "Out of memory loading the tokenizer.");
  for (size_t id = 0; id < t->n; id++)
    if (t->pieces[id].type == TSR_PIECE_USER_DEFINED && t->pieces[id].len > 0)
      t->user_ids[t->n_user++] = (int32_t) id;
  sort_user (t);
  {
    size_t k = 0;
    for (int b = 0; b <= 256; b++)
      {
        while (k < t->n_user && (unsigned char) t->text[t->pieces[t->user_ids[k]].off] < b)
          k++;
        t->user_first[b] = (uint32_t) k;
      }
  }
  return TSR_OK;
}

TsrStatus
tsr_tokenizer_new (const TsrVocab *vocab, TsrTokenizer **out, TsrError *err)
{
  TsrTokenizer *t;
  size_t text_bytes = 0, off = 0;
  TsrStatus st;

  *out = NULL;
  if (vocab->n == 0 || vocab->n > (1u << 24))
    return tsr_error_set (err, TSR_EFORMAT, "A vocabulary of %zu tokens is not one Tessera can use.",
                          vocab->n);
  for (size_t i = 0; i < vocab->n; i++)
    {
      if (vocab->pieces[i] == NULL || vocab->lens[i] > 4096)
        return tsr_error_set (err, TSR_EFORMAT, "Token %zu of the vocabulary is missing or too long.", i);
      text_bytes += vocab->lens[i] + 1;
    }
  t = tokenizer_alloc (vocab->n, text_bytes);
  if (t == NULL)
    return tsr_error_set (err, TSR_ENOMEM, "Out of memory loading the tokenizer.");
  for (size_t i = 0; i < vocab->n; i++)
    {
      Piece *p = &t->pieces[i];
      memcpy (t->text + off, vocab->pieces[i], vocab->lens[i]);
      t->text[off + vocab->lens[i]] = '\0';
      p->off = (uint32_t) off;
      p->len = (uint32_t) vocab->lens[i];
      p->score = vocab->scores ? vocab->scores[i] : 0.0f;
      p->type = vocab->types ? (uint8_t) vocab->types[i] : TSR_PIECE_NORMAL;
      off += vocab->lens[i] + 1;
    }
  t->bos = vocab->bos_id;
  t->eos = vocab->eos_id;
  t->add_dummy_prefix = vocab->add_dummy_prefix;
  st = finish (t, err);
  if (st != TSR_OK)
    {
      tsr_tokenizer_free (t);
      return st;
    }
  if (t->bos >= (int32_t) t->n || t->eos >= (int32_t) t->n)
    {
      tsr_tokenizer_free (t);
      return tsr_error_set (err, TSR_EFORMAT, "The BOS/EOS ids lie outside the vocabulary.");
    }
  *out = t;
  return TSR_OK;
}

void
tsr_tokenizer_free (TsrTokenizer *t)
{
  if (t == NULL)
    return;
  free (t->pieces);
  free (t->text);
  free (t->slots);
  free (t->user_ids);
  free (t);
}

/* ==== Queries =========================================================== */

size_t
tsr_tokenizer_n_vocab (const TsrTokenizer *t)
{
  return t->n;
}

int32_t
tsr_tokenizer_bos (const TsrTokenizer *t)
{
  return t->bos;
}

int32_t
tsr_tokenizer_eos (const TsrTokenizer *t)
{
  return t->eos;
}

const char *
tsr_tokenizer_piece (const TsrTokenizer *t, int32_t id, size_t *len)
{
  if (id < 0 || (size_t) id >= t->n)
    {
      if (len)
        *len = 0;
      return NULL;
    }
  if (len)
    *len = t->pieces[id].len;
  return t->text + t->pieces[id].off;
}

int32_t
tsr_tokenizer_find (const TsrTokenizer *t, const char *piece, size_t len)
{
  return lookup (t, piece, len);
}

float
tsr_tokenizer_score (const TsrTokenizer *t, int32_t id)
{
  return id >= 0 && (size_t) id < t->n ? t->pieces[id].score : 0.0f;
}

int
tsr_tokenizer_type (const TsrTokenizer *t, int32_t id)
{
  return id >= 0 && (size_t) id < t->n ? t->pieces[id].type : 0;
}

int
tsr_tokenizer_add_dummy_prefix (const TsrTokenizer *t)
{
  return t->add_dummy_prefix;
}

/* ==== Encoding ========================================================== */

typedef struct {
  uint32_t start, len;
  int32_t  prev, next;
  int      frozen;
} Symbol;

typedef struct {
  int32_t  left, right;
  uint32_t len;     /* left.len + right.len when pushed: detects stale pairs */
  float    score;
} Pair;

typedef struct {
  Pair  *v;
  size_t n, cap;
} Heap;

/* Higher score first; on equal scores the pair further left. */
static int
pair_before (const Pair *a, const Pair *b)
{
  if (a->score != b->score)
    return a->score > b->score;
  return a->left < b->left;
}

static int
heap_push (Heap *h, Pair p)
{
  size_t i;
  if (h->n == h->cap)
    {
      size_t cap = h->cap ? 2 * h->cap : 64;
      Pair *v = realloc (h->v, cap * sizeof *v);
      if (v == NULL)
        return 0;
      h->v = v;
      h->cap = cap;
    }
  i = h->n++;
  while (i > 0 && pair_before (&p, &h->v[(i - 1) / 2]))
    {
      h->v[i] = h->v[(i - 1) / 2];
      i = (i - 1) / 2;
    }
  h->v[i] = p;
  return 1;
}

static Pair
heap_pop (Heap *h)
{
  Pair top = h->v[0], last = h->v[--h->n];
  size_t i = 0;
  for (;;)
    {
      size_t c = 2 * i + 1;
      if (c >= h->n)
        break;
      if (c + 1 < h->n && pair_before (&h->v[c + 1], &h->v[c]))
        c++;
      if (!pair_before (&h->v[c], &last))
        break;
      h->v[i] = h->v[c];
      i = c;
    }
  if (h->n > 0)
    h->v[i] = last;
  return top;
}

static int
mergeable (const TsrTokenizer *t, int32_t id)
{
  uint8_t ty = t->pieces[id].type;
  return ty == TSR_PIECE_NORMAL || ty == TSR_PIECE_USER_DEFINED || ty == TSR_PIECE_UNUSED;
}

static int
try_pair (const TsrTokenizer *t, const char *s, const Symbol *sym, int32_t l, int32_t r, Heap *h)
{
  int32_t id;
  Pair p;
  if (l < 0 || r < 0 || sym[l].frozen || sym[r].frozen)
    return 1;
  id = lookup (t, s + sym[l].start, sym[l].len + sym[r].len);
  if (id < 0 || !mergeable (t, id))
    return 1;
  p.left = l;
  p.right = r;
  p.len = sym[l].len + sym[r].len;
  p.score = t->pieces[id].score;
  return heap_push (h, p);
}

static size_t
utf8_len (unsigned char c)
{
  if (c < 0x80)
    return 1;
  if ((c & 0xe0) == 0xc0)
    return 2;
  if ((c & 0xf0) == 0xe0)
    return 3;
  if ((c & 0xf8) == 0xf0)
    return 4;
  return 1;   /* a stray byte stands alone and falls back to <0xXX> */
}

/* The longest user-defined piece at s, or 0. */
static size_t
match_user (const TsrTokenizer *t, const char *s, size_t n, int32_t *id)
{
  unsigned char b = (unsigned char) s[0];
  for (uint32_t k = t->user_first[b]; k < t->user_first[b + 1]; k++)
    {
      const Piece *p = &t->pieces[t->user_ids[k]];
      if (p->len <= n && memcmp (t->text + p->off, s, p->len) == 0)
        {
          *id = t->user_ids[k];
          return p->len;
        }
    }
  return 0;
}

typedef struct {
  int32_t *v;
  size_t   n, cap;
} Ids;

static int
ids_push (Ids *ids, int32_t id)
{
  if (ids->n == ids->cap)
    {
      size_t cap = ids->cap ? 2 * ids->cap : 64;
      int32_t *v = realloc (ids->v, cap * sizeof *v);
      if (v == NULL)
        return 0;
      ids->v = v;
      ids->cap = cap;
    }
  ids->v[ids->n++] = id;
  return 1;
}

TsrStatus
tsr_tokenizer_encode (const TsrTokenizer *t, const char *text, size_t len, int add_bos,
                      int32_t **out_ids, size_t *out_n, TsrError *err)
{
  char *s = NULL;
  size_t n = 0, cap;
  Symbol *sym = NULL;
  size_t n_sym = 0;
  Heap heap = { NULL, 0, 0 };
  Ids ids = { NULL, 0, 0 };
  TsrStatus st = TSR_OK;

  *out_ids = NULL;
  *out_n = 0;
  if (len > ((size_t) 1 << 28))
    return tsr_error_set (err, TSR_ETOOLARGE, "The text is %zu bytes; the tokenizer takes at most 256 MiB "
                          "at a time.", len);

  /* Normalise: every space becomes U+2581 (3 bytes). */
  cap = 3 * len + SPACE_MARK_LEN + 1;
  s = malloc (cap);
  sym = malloc ((len + 2) * sizeof *sym);
  if (s == NULL || sym == NULL)
    goto oom;
  if (t->add_dummy_prefix && len > 0)
    {
      memcpy (s, SPACE_MARK, SPACE_MARK_LEN);
      n = SPACE_MARK_LEN;
    }
  for (size_t i = 0; i < len; i++)
    {
      if (text[i] == ' ')
        {
          memcpy (s + n, SPACE_MARK, SPACE_MARK_LEN);
          n += SPACE_MARK_LEN;
        }
      else
        s[n++] = text[i];
    }

  /* Initial symbols. */
  for (size_t i = 0; i < n;)
    {
      int32_t uid;
      size_t l = match_user (t, s + i, n - i, &uid);
      Symbol *y = &sym[n_sym];
      y->frozen = l > 0;
      if (l == 0)
        {
          l = utf8_len ((unsigned char) s[i]);
          if (l > n - i)
            l = n - i;
        }
      y->start = (uint32_t) i;
      y->len = (uint32_t) l;
      y->prev = (int32_t) n_sym - 1;
      y->next = i + l < n ? (int32_t) n_sym + 1 : -1;
      n_sym++;
      i += l;
    }

  for (size_t i = 0; i + 1 < n_sym; i++)
    if (!try_pair (t, s, sym, (int32_t) i, (int32_t) i + 1, &heap))
      goto oom;

  while (heap.n > 0)
    {
      Pair p = heap_pop (&heap);
      Symbol *l = &sym[p.left], *r = &sym[p.right];
      if (l->len == 0 || r->len == 0 || l->next != p.right || l->len + r->len != p.len)
        continue;   /* one side was merged into something else since */
      l->len += r->len;
      r->len = 0;
      l->next = r->next;
      if (r->next >= 0)
        sym[r->next].prev = p.left;
      if (!try_pair (t, s, sym, l->prev, p.left, &heap) ||
          !try_pair (t, s, sym, p.left, l->next, &heap))
        goto oom;
    }

  if (add_bos && t->bos >= 0 && !ids_push (&ids, t->bos))
    goto oom;
  for (int32_t i = n_sym > 0 ? 0 : -1; i >= 0; i = sym[i].next)
    {
      int32_t id = lookup (t, s + sym[i].start, sym[i].len);
      if (id >= 0 && t->pieces[id].type != TSR_PIECE_BYTE)
        {
          if (!ids_push (&ids, id))
            goto oom;
          continue;
        }
      for (uint32_t b = 0; b < sym[i].len; b++)
        {
          int32_t bid = t->byte_ids[(unsigned char) s[sym[i].start + b]];
          if (bid < 0)
            bid = t->unk;
          if (bid < 0)
            {
              st = tsr_error_set (err, TSR_EFORMAT, "The text holds a character the vocabulary cannot "
                                  "express, and it has no byte or unknown tokens.");
              goto done;
            }
          if (!ids_push (&ids, bid))
            goto oom;
        }
    }
  *out_ids = ids.v;
  *out_n = ids.n;
  ids.v = NULL;
  goto done;

oom:
  st = tsr_error_set (err, TSR_ENOMEM, "Out of memory tokenizing %zu bytes of text.", len);
done:
  free (ids.v);
  free (heap.v);
  free (sym);
  free (s);
  return st;
}

/* ==== Decoding ========================================================== */

void
tsr_decoder_init (TsrDecoder *d, const TsrTokenizer *t)
{
  memset (d, 0, sizeof *d);
  d->tok = t;
  d->at_start = 1;
}

/* Appends bytes to out, stopping short of a UTF-8 sequence that is not yet
 * complete: those bytes wait in the decoder for the next piece. Invalid
 * bytes become U+FFFD, as sentencepiece decodes them. */
static size_t
emit_utf8 (TsrDecoder *d, char *out, size_t cap, size_t used, int flush)
{
  size_t i = 0;
  while (i < d->n_pending)
    {
      unsigned char c = d->pending[i];
      size_t need = utf8_len (c), ok = 1;
      if (c >= 0x80 && need == 1)
        ok = 0;   /* a continuation byte with no lead */
      else if (i + need > d->n_pending)
        {
          if (!flush)
            break;   /* wait for the rest */
          ok = 0;
        }
      else
        for (size_t k = 1; k < need; k++)
          if ((d->pending[i + k] & 0xc0) != 0x80)
            {
              ok = 0;
              break;
            }
      if (ok)
        {
          if (used + need <= cap)
            memcpy (out + used, d->pending + i, need);
          used += need;
          i += need;
        }
      else
        {
          if (used + 3 <= cap)
            memcpy (out + used, "\xef\xbf\xbd", 3);
          used += 3;
          i += 1;
        }
    }
  memmove (d->pending, d->pending + i, d->n_pending - i);
  d->n_pending -= i;
  return used;
}

size_t
tsr_decoder_push (TsrDecoder *d, int32_t id, char *out, size_t cap)
{
  const TsrTokenizer *t = d->tok;
  const Piece *p;
  const char *s;
  size_t used = 0;

  if (id < 0 || (size_t) id >= t->n)
    return 0;
  p = &t->pieces[id];
  s = t->text + p->off;
  if (p->type == TSR_PIECE_CONTROL)
    return 0;
  if (p->type == TSR_PIECE_BYTE)
    {
      unsigned v = 0;
      sscanf (s, "<0x%2X>", &v);
      if (d->n_pending < sizeof d->pending)
        d->pending[d->n_pending++] = (unsigned char) v;
      d->at_start = 0;
      return emit_utf8 (d, out, cap, 0, 0);
    }
  if (p->type == TSR_PIECE_UNKNOWN)
    {
      s = " \xe2\x81\x87 ";   /* sentencepiece's " ⁇ " */
      used = emit_utf8 (d, out, cap, 0, 1);
      if (used + 5 <= cap)
        memcpy (out + used, s, 5);
      d->at_start = 0;
      return used + 5;
    }
  /* Pending bytes that never completed a character are flushed first. */
  used = emit_utf8 (d, out, cap, 0, 1);
  for (uint32_t i = 0; i < p->len;)
    {
      if (i + SPACE_MARK_LEN <= p->len && memcmp (s + i, SPACE_MARK, SPACE_MARK_LEN) == 0)
        {
          /* The dummy prefix the encoder added comes off again. */
          if (!(d->at_start && i == 0 && t->add_dummy_prefix))
            {
              if (used < cap)
                out[used] = ' ';
              used++;
            }
          i += SPACE_MARK_LEN;
        }
      else
        {
          if (used < cap)
            out[used] = s[i];
          used++;
          i++;
        }
    }
  d->at_start = 0;
  return used;
}

size_t
tsr_decoder_flush (TsrDecoder *d, char *out, size_t cap)
{
  return emit_utf8 (d, out, cap, 0, 1);
}

/* ==== tokenizer.model (SentencePiece's protobuf) ======================== */

typedef struct {
  const unsigned char *p, *end;
} Reader;

static int
read_varint (Reader *r, uint64_t *v)
{
  uint64_t x = 0;
  for (int shift = 0; shift < 64; shift += 7)
    {
      unsigned char b;
      if (r->p >= r->end)
        return 0;
      b = *r->p++;
      x |= (uint64_t) (b & 0x7f) << shift;
      if (!(b & 0x80))
        {
          *v = x;
          return 1;
        }
    }
  return 0;
}

/* Skips a field of wire type wt; 0 on a malformed or truncated field. */
static int
skip_field (Reader *r, unsigned wt)
{
  uint64_t v;
  switch (wt)
    {
    case 0: return read_varint (r, &v);
    case 1: if (r->end - r->p < 8) return 0; r->p += 8; return 1;
    case 2: if (!read_varint (r, &v) || v > (uint64_t) (r->end - r->p)) return 0; r->p += v; return 1;
    case 5: if (r->end - r->p < 4) return 0; r->p += 4; return 1;
    default: return 0;
    }
}

typedef struct {
  const char **pieces;
  size_t      *lens;
  float       *scores;
  int32_t     *types;
  size_t       n, cap;
  int          model_type;        /* TrainerSpec.model_type: 1 unigram, 2 bpe */
  int          byte_fallback;
  int          add_dummy_prefix;  /* NormalizerSpec.add_dummy_prefix, default true */
  char         normalizer[64];
} SpmModel;

static int
parse_piece (Reader r, SpmModel *m)
{
  const char *piece = NULL;
  size_t len = 0;
  float score = 0;
  int32_t type = TSR_PIECE_NORMAL;   /* the protobuf default */

  while (r.p < r.end)
    {
      uint64_t key, v;
      if (!read_varint (&r, &key))
        return 0;
      if (key == ((1 << 3) | 2))
        {
          if (!read_varint (&r, &v) || v > (uint64_t) (r.end - r.p))
            return 0;
          piece = (const char *) r.p;
          len = (size_t) v;
          r.p += v;
        }
      else if (key == ((2 << 3) | 5))
        {
          uint32_t u;
          if (r.end - r.p < 4)
            return 0;
          u = (uint32_t) r.p[0] | (uint32_t) r.p[1] << 8 | (uint32_t) r.p[2] << 16 | (uint32_t) r.p[3] << 24;
          memcpy (&score, &u, 4);
          r.p += 4;
        }
      else if (key == ((3 << 3) | 0))
        {
          if (!read_varint (&r, &v))
            return 0;
          type = (int32_t) v;
        }
      else if (!skip_field (&r, (unsigned) (key & 7)))
        return 0;
    }
  if (piece == NULL)
    return 0;
  if (m->n == m->cap)
    {
      size_t cap = m->cap ? 2 * m->cap : 1024;
      const char **p = realloc (m->pieces, cap * sizeof *p);
      size_t *l;
      float *s;
      int32_t *t;
      if (p == NULL)
        return -1;
      m->pieces = p;
      if ((l = realloc (m->lens, cap * sizeof *l)) == NULL)
        return -1;
      m->lens = l;
      if ((s = realloc (m->scores, cap * sizeof *s)) == NULL)
        return -1;
      m->scores = s;
      if ((t = realloc (m->types, cap * sizeof *t)) == NULL)
        return -1;
      m->types = t;
      m->cap = cap;
    }
  m->pieces[m->n] = piece;
  m->lens[m->n] = len;
  m->scores[m->n] = score;
  m->types[m->n] = type;
  m->n++;
  return 1;
}

static int
parse_submessage (Reader r, SpmModel *m, int which)
{
  while (r.p < r.end)
    {
      uint64_t key, v;
      unsigned field, wt;
      if (!read_varint (&r, &key))
        return 0;
      field = (unsigned) (key >> 3);
      wt = (unsigned) (key & 7);
      if (which == 2 && field == 3 && wt == 0)          /* TrainerSpec.model_type */
        {
          if (!read_varint (&r, &v))
            return 0;
          m->model_type = (int) v;
        }
      else if (which == 2 && field == 35 && wt == 0)    /* TrainerSpec.byte_fallback */
        {
          if (!read_varint (&r, &v))
            return 0;
          m->byte_fallback = v != 0;
        }
      else if (which == 3 && field == 1 && wt == 2)     /* NormalizerSpec.name */
        {
          if (!read_varint (&r, &v) || v > (uint64_t) (r.end - r.p))
            return 0;
          snprintf (m->normalizer, sizeof m->normalizer, "%.*s", (int) (v < 63 ? v : 63), (const char *) r.p);
          r.p += v;
        }
      else if (which == 3 && field == 3 && wt == 0)     /* NormalizerSpec.add_dummy_prefix */
        {
          if (!read_varint (&r, &v))
            return 0;
          m->add_dummy_prefix = v != 0;
        }
      else if (!skip_field (&r, wt))
        return 0;
    }
  return 1;
}

TsrStatus
tsr_tokenizer_load_spm (const char *path, TsrTokenizer **out, TsrError *err)
{
  FILE *f;
  unsigned char *buf = NULL;
  long size;
  SpmModel m;
  Reader r;
  TsrStatus st = TSR_OK;

  *out = NULL;
  memset (&m, 0, sizeof m);
  m.add_dummy_prefix = 1;
  f = fopen (path, "rb");
  if (f == NULL)
    return tsr_error_set (err, TSR_EIO, "Could not open the tokenizer “%s”: %s.", path, strerror (errno));
  if (fseek (f, 0, SEEK_END) != 0 || (size = ftell (f)) < 0 || fseek (f, 0, SEEK_SET) != 0)
    {
      fclose (f);
      return tsr_error_set (err, TSR_EIO, "Could not read the tokenizer “%s”.", path);
    }
  if (size == 0 || size > (64L << 20))
    {
      fclose (f);
      return tsr_error_set (err, TSR_EFORMAT, "“%s” is %ld bytes: not a SentencePiece tokenizer.model.",
                            path, size);
    }
  buf = malloc ((size_t) size);
  if (buf == NULL || fread (buf, 1, (size_t) size, f) != (size_t) size)
    {
      fclose (f);
      free (buf);
      return tsr_error_set (err, buf ? TSR_EIO : TSR_ENOMEM, "Could not read the tokenizer “%s”.", path);
    }
  fclose (f);

  r.p = buf;
  r.end = buf + size;
  while (r.p < r.end)
    {
      uint64_t key, v;
      unsigned field, wt;
      int ok = 1;
      if (!read_varint (&r, &key))
        {
          ok = 0;
          goto bad;
        }
      field = (unsigned) (key >> 3);
      wt = (unsigned) (key & 7);
      if ((field == 1 || field == 2 || field == 3) && wt == 2)
        {
          Reader sub;
          if (!read_varint (&r, &v) || v > (uint64_t) (r.end - r.p))
            {
              ok = 0;
              goto bad;
            }
          sub.p = r.p;
          sub.end = r.p + v;
          r.p += v;
          if (field == 1)
            {
              int pr = parse_piece (sub, &m);
              if (pr < 0)
                {
                  st = tsr_error_set (err, TSR_ENOMEM, "Out of memory reading the tokenizer.");
                  goto done;
                }
              ok = pr;
            }
          else
            ok = parse_submessage (sub, &m, (int) field);
        }
      else
        ok = skip_field (&r, wt);
    bad:
      if (!ok)
        {
          st = tsr_error_set (err, TSR_EFORMAT, "“%s” is not a SentencePiece tokenizer.model (damaged "
                              "protobuf near byte %ld).", path, (long) (r.p - buf));
          goto done;
        }
    }

  if (m.n == 0)
    {
      st = tsr_error_set (err, TSR_EFORMAT, "“%s” holds no vocabulary: not a SentencePiece "
                          "tokenizer.model.", path);
      goto done;
    }
  if (m.model_type != 2)
    {
      st = tsr_error_set (err, TSR_EFORMAT, "“%s” is a SentencePiece model of type %d; Tessera reads "
                          "BPE models (type 2) only.", path, m.model_type);
      goto done;
    }
  if (m.normalizer[0] != '\0' && strcmp (m.normalizer, "identity") != 0)
    {
      st = tsr_error_set (err, TSR_EFORMAT, "“%s” uses the “%s” normaliser; Tessera implements only "
                          "“identity”.", path, m.normalizer);
      goto done;
    }
  {
    TsrVocab v;
    memset (&v, 0, sizeof v);
    v.n = m.n;
    v.pieces = m.pieces;
    v.lens = m.lens;
    v.scores = m.scores;
    v.types = m.types;
    v.bos_id = -1;
    v.eos_id = -1;
    v.add_dummy_prefix = m.add_dummy_prefix;
    for (size_t i = 0; i < m.n; i++)
      if (m.types[i] == TSR_PIECE_CONTROL)
        {
          if (m.lens[i] == 3 && memcmp (m.pieces[i], "<s>", 3) == 0)
            v.bos_id = (int32_t) i;
          else if (m.lens[i] == 4 && memcmp (m.pieces[i], "</s>", 4) == 0)
            v.eos_id = (int32_t) i;
        }
    st = tsr_tokenizer_new (&v, out, err);
  }

done:
  free (m.pieces);
  free (m.lens);
  free (m.scores);
  free (m.types);
  free (buf);
  return st;
}
