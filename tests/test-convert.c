/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * test-convert.c — the converter (engine/tsr-convert.c), end to end.
 *
 *   test-convert HF_DIR…
 *       converts each checkpoint folder to f32, f16, bf16, q8_0 and q4_0
 *       and checks the GGUF against the checkpoint: tsr_gguf_model_info
 *       accepts it; every tensor has the name, type and shape DESIGN.md
 *       gives and equals its source within the type's bound; q/k/v are the
 *       right rows of the fused wqkv; the metadata matches config.json and
 *       tokenizer.model (parsed here, independently of the engine's
 *       tokenizer); progress reports add up; an abort leaves no file.
 *   test-convert --make-large DIR HIDDEN LAYERS VOCAB
 *       writes a synthetic bf16 safetensors checkpoint (two shards) of the
 *       real layout at the given size, with TOKENIZER copied from the
 *       environment variable TSR_TEST_TOKENIZER.
 *   test-convert --rss HF_DIR TYPE [THREADS]
 *       converts in a child process and reports its peak resident memory
 *       (getrusage ru_maxrss) against the largest source tensor; fails if
 *       the peak exceeds baseline + largest tensor + 64 MB. With THREADS
 *       also checks that 1 thread and THREADS threads write the same bytes.
 *
 * TSR_TEST_VERBOSE=1 prints the NMSE of every quantised tensor.
 *
 * The expectations are computed here from DESIGN.md's tables and model.md
 * §2's index formula, never by calling the converter's own helpers.
 */
#define _GNU_SOURCE 1

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "tessera-engine.h"
#include "tsr-checkpoint.h"

static int n_checks, n_failed;

#define CHECK(cond, ...)                                                   \
  do {                                                                     \
    n_checks++;                                                            \
    if (!(cond))                                                           \
      {                                                                    \
        n_failed++;                                                        \
        fprintf (stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);   \
        fprintf (stderr, __VA_ARGS__);                                     \
        fputc ('\n', stderr);                                              \
      }                                                                    \
  } while (0)

static char tmpdir[256];

static int
file_exists (const char *path)
{
  struct stat sb;
  return stat (path, &sb) == 0;
}

static double
now_s (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

/* ==== Independent decoding of the source values ========================= */

static float
half_to_float (uint16_t h)
{
  int e = (h >> 10) & 31, m = h & 1023;
  double v = e == 0 ? ldexp (m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp (m + 1024, e - 25);
  return (float) ((h & 0x8000) ? -v : v);
}

static float
bf16_to_float (uint16_t h)
{
  uint32_t u = (uint32_t) h << 16;
  float f;
  memcpy (&f, &u, 4);
  return f;
}

static float *
source_values (const TsrCkptTensor *t)
{
  float *x = malloc ((size_t) (t->numel ? t->numel : 1) * sizeof *x);
  const unsigned char *p = t->data;
  for (int64_t i = 0; i < t->numel; i++)
    {
      uint16_t h;
      if (t->dtype == TSR_DTYPE_F32)
        memcpy (&x[i], p + 4 * i, 4);
      else
        {
          memcpy (&h, p + 2 * i, 2);
          x[i] = t->dtype == TSR_DTYPE_F16 ? half_to_float (h) : bf16_to_float (h);
        }
    }
  return x;
}

/* ==== config.json, read here ============================================= */

typedef struct {
  int64_t E, L, H, Hkv, F, V, ctx, max_len;
  double  eps, theta;
  int64_t VE, VL, VH, VF, P, S;
  double  veps;
  double  alpha[5];   /* wqkv, wo, w1, w3, w2: the order of the TSR_PLORA_* values */
} Cfg;

static double
jnum (const cJSON *o, const char *k, double dflt)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive (o, k);
  return cJSON_IsNumber (v) ? v->valuedouble : dflt;
}

static int
read_cfg (const char *dir, Cfg *c)
{
  char path[600];
  cJSON *root;
  const cJSON *vc, *pa;
  TsrError err;

  snprintf (path, sizeof path, "%s/config.json", dir);
  if (tsr_json_load_file (path, 1 << 20, &root, &err) != TSR_OK)
    {
      fprintf (stderr, "%s\n", err.message);
      return 0;
    }
  c->E = (int64_t) jnum (root, "hidden_size", 0);
  c->L = (int64_t) jnum (root, "num_hidden_layers", 0);
  c->H = (int64_t) jnum (root, "num_attention_heads", 0);
  c->Hkv = (int64_t) jnum (root, "num_key_value_heads", (double) c->H);
  c->F = (int64_t) jnum (root, "intermediate_size", 0);
  c->V = (int64_t) jnum (root, "vocab_size", 0);
  c->ctx = (int64_t) jnum (root, "max_position_embeddings", 0);
  c->max_len = (int64_t) jnum (root, "max_length", 0);
  c->eps = jnum (root, "rms_norm_eps", 0);
  c->theta = jnum (root, "rope_theta", 10000);
  vc = cJSON_GetObjectItemCaseSensitive (root, "vision_config");
  c->VE = (int64_t) jnum (vc, "hidden_size", 1024);
  c->VL = (int64_t) jnum (vc, "num_hidden_layers", 24);
  c->VH = (int64_t) jnum (vc, "num_attention_heads", 16);
  c->VF = (int64_t) jnum (vc, "intermediate_size", 4096);
  c->P = (int64_t) jnum (vc, "patch_size", 14);
  c->S = (int64_t) jnum (vc, "image_size", 336);
  c->veps = jnum (vc, "layer_norm_eps", 1e-5);
  pa = cJSON_GetObjectItemCaseSensitive (root, "plora_alpha");
  c->alpha[0] = jnum (pa, "wqkv", 16);
  c->alpha[1] = jnum (pa, "wo", 256);
  c->alpha[2] = jnum (pa, "w1", 256);
  c->alpha[3] = jnum (pa, "w3", 256);
  c->alpha[4] = jnum (pa, "w2", 256);
  cJSON_Delete (root);
  return 1;
}

/* ==== tokenizer.model, parsed here (SentencePiece's protobuf) ============ */

typedef struct {
  size_t    n;
  char    **piece;
  size_t   *len;
  float    *score;
  int      *type;
  int       add_dummy_prefix;
} Spm;

static int
pb_varint (const unsigned char *p, size_t n, size_t *i, uint64_t *v)
{
  *v = 0;
  for (int shift = 0; shift < 64 && *i < n; shift += 7)
    {
      unsigned char b = p[(*i)++];
      *v |= (uint64_t) (b & 0x7f) << shift;
      if (!(b & 0x80))
        return 1;
    }
  return 0;
}

/* Calls fn for every field of a message; 0 on a damaged message. */
static int
pb_walk (const unsigned char *p, size_t n,
         void (*fn) (void *ud, int field, int wt, uint64_t v, const unsigned char *data, size_t len),
         void *ud)
{
  size_t i = 0;
  while (i < n)
    {
      uint64_t key, v = 0;
      const unsigned char *data = NULL;
      size_t len = 0;
      if (!pb_varint (p, n, &i, &key))
        return 0;
      switch (key & 7)
        {
        case 0:
          if (!pb_varint (p, n, &i, &v))
            return 0;
          break;
        case 1:
          if (n - i < 8)
            return 0;
          data = p + i, len = 8, i += 8;
          break;
        case 2:
          if (!pb_varint (p, n, &i, &v) || v > n - i)
            return 0;
          data = p + i, len = (size_t) v, i += (size_t) v;
          break;
        case 5:
          if (n - i < 4)
            return 0;
          data = p + i, len = 4, i += 4;
          break;
        default:
          return 0;
        }
      fn (ud, (int) (key >> 3), (int) (key & 7), v, data, len);
    }
  return 1;
}

static void
on_piece_field (void *ud, int field, int wt, uint64_t v, const unsigned char *data, size_t len)
{
  Spm *s = ud;
  size_t k = s->n - 1;
  if (field == 1 && wt == 2)
    {
      s->piece[k] = malloc (len + 1);
      memcpy (s->piece[k], data, len);
      s->piece[k][len] = '\0';
      s->len[k] = len;
    }
  else if (field == 2 && wt == 5)
    memcpy (&s->score[k], data, 4);
  else if (field == 3 && wt == 0)
    s->type[k] = (int) v;
}

static void
on_normalizer_field (void *ud, int field, int wt, uint64_t v, const unsigned char *data, size_t len)
{
  (void) data, (void) len;
  if (field == 3 && wt == 0)
    ((Spm *) ud)->add_dummy_prefix = v != 0;
}

static void
on_model_field (void *ud, int field, int wt, uint64_t v, const unsigned char *data, size_t len)
{
  Spm *s = ud;
  (void) v;
  if (field == 1 && wt == 2)
    {
      s->n++;
      s->piece = realloc (s->piece, s->n * sizeof *s->piece);
      s->len = realloc (s->len, s->n * sizeof *s->len);
      s->score = realloc (s->score, s->n * sizeof *s->score);
      s->type = realloc (s->type, s->n * sizeof *s->type);
      s->piece[s->n - 1] = NULL;
      s->len[s->n - 1] = 0;
      s->score[s->n - 1] = 0;
      s->type[s->n - 1] = 1;   /* proto default: NORMAL */
      pb_walk (data, len, on_piece_field, s);
    }
  else if (field == 3 && wt == 2)
    pb_walk (data, len, on_normalizer_field, s);
}

static int
read_spm (const char *dir, Spm *s)
{
  char path[600];
  unsigned char *buf;
  long size;
  FILE *f;
  int ok;

  memset (s, 0, sizeof *s);
  s->add_dummy_prefix = 1;   /* proto default */
  snprintf (path, sizeof path, "%s/tokenizer.model", dir);
  f = fopen (path, "rb");
  if (f == NULL)
    return 0;
  fseek (f, 0, SEEK_END);
  size = ftell (f);
  fseek (f, 0, SEEK_SET);
  buf = malloc ((size_t) size);
  ok = fread (buf, 1, (size_t) size, f) == (size_t) size;
  fclose (f);
  ok = ok && pb_walk (buf, (size_t) size, on_model_field, s);
  free (buf);
  return ok;
}

static void
free_spm (Spm *s)
{
  for (size_t i = 0; i < s->n; i++)
    free (s->piece[i]);
  free (s->piece);
  free (s->len);
  free (s->score);
  free (s->type);
}

static int64_t
spm_find (const Spm *s, const char *piece)
{
  for (size_t i = 0; i < s->n; i++)
    if (s->len[i] == strlen (piece) && memcmp (s->piece[i], piece, s->len[i]) == 0)
      return (int64_t) i;
  return -1;
}

/* ==== DESIGN.md's naming table, written out here ======================== */

enum { SEL_ALL, SEL_Q, SEL_K, SEL_V };
enum { K_TYPE, K_F32, K_PATCH };

typedef struct {
  const char *gguf, *hf;
  int         sel, kind;
} Map;

static const Map top_map[] = {
  { "token_embd.weight", "model.tok_embeddings.weight", SEL_ALL, K_TYPE },
  { "output_norm.weight", "model.norm.weight", SEL_ALL, K_F32 },
  { "output.weight", "output.weight", SEL_ALL, K_TYPE },
  { "v.patch_embd.weight", "vit.vision_tower.vision_model.embeddings.patch_embedding.weight", SEL_ALL, K_PATCH },
  { "v.class_embd.weight", "vit.vision_tower.vision_model.embeddings.class_embedding", SEL_ALL, K_F32 },
  { "v.pos_embd.weight", "vit.vision_tower.vision_model.embeddings.position_embedding.weight", SEL_ALL, K_F32 },
  { "v.pre_ln.weight", "vit.vision_tower.vision_model.pre_layrnorm.weight", SEL_ALL, K_F32 },
  { "v.pre_ln.bias", "vit.vision_tower.vision_model.pre_layrnorm.bias", SEL_ALL, K_F32 },
  { "mm.0.weight", "vision_proj.0.weight", SEL_ALL, K_TYPE },
  { "mm.0.bias", "vision_proj.0.bias", SEL_ALL, K_F32 },
  { "mm.2.weight", "vision_proj.2.weight", SEL_ALL, K_TYPE },
  { "mm.2.bias", "vision_proj.2.bias", SEL_ALL, K_F32 },
  { "mm.glb_gn.weight", "plora_glb_GN", SEL_ALL, K_F32 },
  { "mm.sub_gn.weight", "plora_sub_GN", SEL_ALL, K_F32 },
};

static const Map blk_map[] = {
  { "attn_norm.weight", "attention_norm.weight", SEL_ALL, K_F32 },
  { "attn_q.weight", "attention.wqkv.weight", SEL_Q, K_TYPE },
  { "attn_k.weight", "attention.wqkv.weight", SEL_K, K_TYPE },
  { "attn_v.weight", "attention.wqkv.weight", SEL_V, K_TYPE },
  { "attn_output.weight", "attention.wo.weight", SEL_ALL, K_TYPE },
  { "ffn_norm.weight", "ffn_norm.weight", SEL_ALL, K_F32 },
  { "ffn_gate.weight", "feed_forward.w1.weight", SEL_ALL, K_TYPE },
  { "ffn_up.weight", "feed_forward.w3.weight", SEL_ALL, K_TYPE },
  { "ffn_down.weight", "feed_forward.w2.weight", SEL_ALL, K_TYPE },
  { "attn_qkv.lora_a.weight", "attention.wqkv.Plora_A.weight", SEL_ALL, K_F32 },
  { "attn_q.lora_b.weight", "attention.wqkv.Plora_B.weight", SEL_Q, K_F32 },
  { "attn_k.lora_b.weight", "attention.wqkv.Plora_B.weight", SEL_K, K_F32 },
  { "attn_v.lora_b.weight", "attention.wqkv.Plora_B.weight", SEL_V, K_F32 },
  { "attn_output.lora_a.weight", "attention.wo.Plora_A.weight", SEL_ALL, K_F32 },
  { "attn_output.lora_b.weight", "attention.wo.Plora_B.weight", SEL_ALL, K_F32 },
  { "ffn_gate.lora_a.weight", "feed_forward.w1.Plora_A.weight", SEL_ALL, K_F32 },
  { "ffn_gate.lora_b.weight", "feed_forward.w1.Plora_B.weight", SEL_ALL, K_F32 },
  { "ffn_up.lora_a.weight", "feed_forward.w3.Plora_A.weight", SEL_ALL, K_F32 },
  { "ffn_up.lora_b.weight", "feed_forward.w3.Plora_B.weight", SEL_ALL, K_F32 },
  { "ffn_down.lora_a.weight", "feed_forward.w2.Plora_A.weight", SEL_ALL, K_F32 },
  { "ffn_down.lora_b.weight", "feed_forward.w2.Plora_B.weight", SEL_ALL, K_F32 },
};

static const Map vblk_map[] = {
  { "attn_q.weight", "self_attn.q_proj.weight", SEL_ALL, K_TYPE },
  { "attn_q.bias", "self_attn.q_proj.bias", SEL_ALL, K_F32 },
  { "attn_k.weight", "self_attn.k_proj.weight", SEL_ALL, K_TYPE },
  { "attn_k.bias", "self_attn.k_proj.bias", SEL_ALL, K_F32 },
  { "attn_v.weight", "self_attn.v_proj.weight", SEL_ALL, K_TYPE },
  { "attn_v.bias", "self_attn.v_proj.bias", SEL_ALL, K_F32 },
  { "attn_out.weight", "self_attn.out_proj.weight", SEL_ALL, K_TYPE },
  { "attn_out.bias", "self_attn.out_proj.bias", SEL_ALL, K_F32 },
  { "ln1.weight", "layer_norm1.weight", SEL_ALL, K_F32 },
  { "ln1.bias", "layer_norm1.bias", SEL_ALL, K_F32 },
  { "ln2.weight", "layer_norm2.weight", SEL_ALL, K_F32 },
  { "ln2.bias", "layer_norm2.bias", SEL_ALL, K_F32 },
  { "ffn_up.weight", "mlp.fc1.weight", SEL_ALL, K_TYPE },
  { "ffn_up.bias", "mlp.fc1.bias", SEL_ALL, K_F32 },
  { "ffn_down.weight", "mlp.fc2.weight", SEL_ALL, K_TYPE },
  { "ffn_down.bias", "mlp.fc2.bias", SEL_ALL, K_F32 },
};

#define N_OF(a) (sizeof (a) / sizeof (a)[0])

/* The HF name, row selection and kind of GGUF tensor `name`; 0 if the
 * table has no such name. */
static int
source_of (const char *name, char *hf, size_t hf_size, int *sel, int *kind)
{
  int layer, used = 0;
  char rest[96];

  for (size_t i = 0; i < N_OF (top_map); i++)
    if (strcmp (name, top_map[i].gguf) == 0)
      {
        snprintf (hf, hf_size, "%s", top_map[i].hf);
        *sel = top_map[i].sel;
        *kind = top_map[i].kind;
        return 1;
      }
  if (sscanf (name, "v.blk.%d.%95s%n", &layer, rest, &used) == 2 && name[used] == '\0')
    {
      for (size_t i = 0; i < N_OF (vblk_map); i++)
        if (strcmp (rest, vblk_map[i].gguf) == 0)
          {
            snprintf (hf, hf_size, "vit.vision_tower.vision_model.encoder.layers.%d.%s", layer, vblk_map[i].hf);
            *sel = vblk_map[i].sel;
            *kind = vblk_map[i].kind;
            return 1;
          }
      return 0;
    }
  if (sscanf (name, "blk.%d.%95s%n", &layer, rest, &used) == 2 && name[used] == '\0')
    for (size_t i = 0; i < N_OF (blk_map); i++)
      if (strcmp (rest, blk_map[i].gguf) == 0)
        {
          snprintf (hf, hf_size, "model.layers.%d.%s", layer, blk_map[i].hf);
          *sel = blk_map[i].sel;
          *kind = blk_map[i].kind;
          return 1;
        }
  return 0;
}

/* ==== Comparing one tensor =============================================== */

typedef struct {
  double nmse_max[5];     /* by output type slot, for the log */
} Stats;

static int
slot (TsrDType t)
{
  switch (t)
    {
    case TSR_DTYPE_F32: return 0;
    case TSR_DTYPE_F16: return 1;
    case TSR_DTYPE_BF16: return 2;
    case TSR_DTYPE_Q8_0: return 3;
    case TSR_DTYPE_Q4_0: return 4;
    }
  return 0;
}

/* ggml's test-quantize-fns allows a "total error" sqrt(Σe²)/n ≤ 0.002 on
 * its n = 4096 values 0.1 + 2cos(i), whose RMS is √2.01 = 1.4177: relative
 * to the data that is an NMSE of (0.002·64 / 1.4177)² = 0.00815, the bound
 * used here for both q8_0 and q4_0 (ggml uses one constant for both). */
#define GGML_NMSE_MAX 0.00815

static void
compare (const char *name, const char *hf, TsrDType src_type, TsrDType type, int64_t ne0,
         const float *x, const float *y, uint64_t n, Stats *stats)
{
  double se = 0, sx = 0, worst = 0;
  uint64_t bad = 0, first_bad = 0;

  if (type == TSR_DTYPE_F32 || type == src_type)
    {
      /* Every source value is representable: bit for bit. */
      CHECK (memcmp (x, y, n * sizeof *x) == 0, "%s (from %s, %s → %s) is not bit-exact", name, hf,
             tsr_dtype_name (src_type), tsr_dtype_name (type));
      return;
    }
  for (uint64_t i = 0; i < n; i++)
    {
      double e = fabs ((double) y[i] - (double) x[i]), bound;
      if (type == TSR_DTYPE_F16)
        bound = fabs (x[i]) * ldexp (1, -11) + ldexp (1, -25);   /* half an ulp, subnormals too */
      else if (type == TSR_DTYPE_BF16)
        bound = fabs (x[i]) * ldexp (1, -8) + ldexp (1, -134);
      else
        {
          /* Per block of 32 along ne[0]: from the format (see DESIGN.md,
           * tsr-dtype): q8_0 rounds to d/2 with d = amax/127, q4_0 may be
           * off by a whole d = amax/8 at the clamped end; the f16 scale adds
           * at most |q|·d·2^-11. */
          uint64_t b0 = i / 32 * 32;
          double amax = 0;
          for (uint64_t k = b0; k < b0 + 32 && k < n; k++)
            amax = fmax (amax, fabs (x[k]));
          bound = type == TSR_DTYPE_Q8_0 ? amax * (1.0 / 254 + 1.0 / 1024) : amax / 8 * (1 + 1.0 / 128);
          bound += 1e-30;
        }
      if (e > bound)
        {
          if (bad++ == 0)
            first_bad = i;
        }
      worst = fmax (worst, e);
      se += e * e;
      sx += (double) x[i] * x[i];
    }
  CHECK (bad == 0, "%s (from %s, %s → %s): %llu values beyond the bound, first at %llu: %g vs %g", name, hf,
         tsr_dtype_name (src_type), tsr_dtype_name (type), (unsigned long long) bad,
         (unsigned long long) first_bad, (double) y[first_bad], (double) x[first_bad]);
  if (tsr_dtype_block_values (type) > 1)
    {
      double nmse = sx > 0 ? se / sx : 0;
      CHECK (nmse <= GGML_NMSE_MAX, "%s (%s): NMSE %g above ggml's %g", name, tsr_dtype_name (type), nmse,
             GGML_NMSE_MAX);
      if (getenv ("TSR_TEST_VERBOSE"))
        printf ("    %s %s NMSE %g\n", name, tsr_dtype_name (type), nmse);
      if (nmse > stats->nmse_max[slot (type)])
        stats->nmse_max[slot (type)] = nmse;
    }
  (void) ne0;
}

/* The rows `sel` of a fused [(H + 2·Hkv)·hd, cols] matrix, from model.md
 * §2: row f = g·(q_per_kv + 2)·hd + s·hd + d holds query head g·q_per_kv + s
 * (s < q_per_kv), key head g (s = q_per_kv) or value head g (s + 1). */
static float *
select_rows (const float *x, int sel, const Cfg *c, int64_t cols, uint64_t *n_out)
{
  int64_t hd = c->E / c->H, qpk = c->H / c->Hkv;
  int64_t rows = sel == SEL_Q ? c->H * hd : c->Hkv * hd, r = 0;
  float *y = malloc ((size_t) (rows * cols) * sizeof *y);

  for (int64_t g = 0; g < c->Hkv; g++)
    {
      int64_t s_lo = sel == SEL_Q ? 0 : sel == SEL_K ? qpk : qpk + 1;
      int64_t s_hi = sel == SEL_Q ? qpk : s_lo + 1;
      for (int64_t s = s_lo; s < s_hi; s++)
        for (int64_t d = 0; d < hd; d++)
          {
            int64_t f = g * (qpk + 2) * hd + s * hd + d;
            /* Output row: head j = g·q_per_kv + s for Q, g for K and V. */
            int64_t j = sel == SEL_Q ? g * qpk + s : g;
            r = j * hd + d;
            memcpy (y + r * cols, x + f * cols, (size_t) cols * sizeof *y);
          }
    }
  *n_out = (uint64_t) (rows * cols);
  return y;
}

/* ==== One conversion ====================================================== */

typedef struct {
  int      calls;
  int      stages_seen;     /* bit per stage */
  uint64_t last_bytes, last_tensors, total_bytes, total_tensors;
  int      monotonic;
  int      abort_at;        /* > 0: ask to stop once this many tensors are done */
  int      notes;
} Watch;

static void
on_progress (const TsrConvertProgress *p, void *ud)
{
  Watch *w = ud;
  static const char *const stages[] = { "reading", "converting", "finishing", "done" };
  w->calls++;
  for (int i = 0; i < 4; i++)
    if (strcmp (p->stage, stages[i]) == 0)
      w->stages_seen |= 1 << i;
  if (p->bytes_done < w->last_bytes || p->tensors_done < w->last_tensors ||
      p->bytes_done > p->bytes_total || p->tensors_done > p->tensors_total)
    w->monotonic = 0;
  w->last_bytes = p->bytes_done;
  w->last_tensors = p->tensors_done;
  w->total_bytes = p->bytes_total;
  w->total_tensors = p->tensors_total;
}

static void
on_note (const char *msg, void *ud)
{
  ((Watch *) ud)->notes++;
  fprintf (stderr, "    note: %s\n", msg);
}

static int
on_abort (void *ud)
{
  Watch *w = ud;
  return w->abort_at > 0 && w->last_tensors >= (uint64_t) w->abort_at;
}

static void
check_metadata (const char *dir, const TsrGguf *g, const TsrGgufModelInfo *m, const Cfg *c, TsrDType type)
{
  Spm spm;
  const TsrGgufStr *toks = NULL;
  uint64_t n = 0;
  float *scores;
  int32_t *types;
  int b, quantised = tsr_dtype_block_values (type) > 1;
  uint32_t u;
  static const uint32_t ftype[5] = { 0, 1, 32, 7, 2 };   /* llama.cpp's LLAMA_FTYPE_* */
  static const char *const alpha_names[5] = { "wqkv", "wo", "w1", "w3", "w2" };
  TsrError err;

  CHECK (strcmp (m->arch_name, "internlm2-4khd") == 0 && m->arch == TSR_ARCH_INTERNLM2_4KHD, "arch %s",
         m->arch_name);
  CHECK (m->n_embd == c->E && m->n_layer == c->L && m->n_head == c->H && m->n_head_kv == c->Hkv &&
         m->n_ff == c->F && m->n_vocab == c->V && m->n_head_dim == c->E / c->H,
         "decoder dims %u %u %u %u %u %u", m->n_embd, m->n_layer, m->n_head, m->n_head_kv, m->n_ff, m->n_vocab);
  CHECK (m->n_ctx == c->ctx, "context %u, config %lld", m->n_ctx, (long long) c->ctx);
  CHECK (m->rms_eps == (float) c->eps && m->rope_freq_base == (float) c->theta, "eps %g theta %g",
         (double) m->rms_eps, (double) m->rope_freq_base);
  CHECK (!m->tied_output && !m->synthetic, "tied %d synthetic %d", m->tied_output, m->synthetic);
  if (c->max_len)
    CHECK (tsr_gguf_get_u32 (g, "internlm2-4khd.max_input_length", &u, &err) == TSR_OK && u == c->max_len,
           "max_input_length");
  CHECK (m->v_n_embd == c->VE && m->v_n_layer == c->VL && m->v_n_head == c->VH && m->v_n_ff == c->VF &&
         m->v_patch_size == c->P && m->v_image_size == c->S && m->v_eps == (float) c->veps &&
         m->mm_n_in == 4 * c->VE, "vision dims");
  /* Ranks come from the Plora_A shapes; the scales from plora_alpha. */
  for (int k = 0; k < TSR_PLORA_COUNT; k++)
    {
      const TsrGgufTensor *a;
      char name[96];
      snprintf (name, sizeof name, "blk.0.%s.lora_a.weight", tsr_plora_name (k));
      a = tsr_gguf_find_tensor (g, name);
      CHECK (a && m->plora_rank[k] == a->ne[1], "%s rank %u", name, m->plora_rank[k]);
      CHECK (m->plora_scale[k] == (float) (c->alpha[k] / m->plora_rank[k]), "%s scale %g, alpha %s = %g",
             tsr_plora_name (k), (double) m->plora_scale[k], alpha_names[k], c->alpha[k]);
    }

  CHECK (tsr_gguf_get_u32 (g, "general.file_type", &u, &err) == TSR_OK && u == ftype[slot (type)],
         "general.file_type %u for %s", u, tsr_dtype_name (type));
  CHECK ((tsr_gguf_find_kv (g, "general.quantization_version") != NULL) == quantised,
         "quantization_version present iff quantised (%s)", tsr_dtype_name (type));

  /* The vocabulary, piece by piece against tokenizer.model. */
  if (!read_spm (dir, &spm))
    {
      CHECK (0, "cannot parse %s/tokenizer.model", dir);
      return;
    }
  CHECK (tsr_gguf_get_arr_str (g, "tokenizer.ggml.tokens", &toks, &n, &err) == TSR_OK && n == spm.n,
         "%llu tokens, tokenizer.model has %zu", (unsigned long long) n, spm.n);
  scores = calloc (spm.n, sizeof *scores);
  types = calloc (spm.n, sizeof *types);
  if (n == spm.n)
    {
      size_t bad_piece = 0, bad_score = 0, bad_type = 0;
      CHECK (tsr_gguf_get_arr_f32 (g, "tokenizer.ggml.scores", scores, n, &err) == TSR_OK, "%s", err.message);
      CHECK (tsr_gguf_get_arr_i32 (g, "tokenizer.ggml.token_type", types, n, &err) == TSR_OK, "%s", err.message);
      for (size_t i = 0; i < spm.n; i++)
        {
          bad_piece += toks[i].len != spm.len[i] || memcmp (toks[i].ptr, spm.piece[i], spm.len[i]) != 0;
          bad_score += memcmp (&scores[i], &spm.score[i], 4) != 0;
          bad_type += types[i] != spm.type[i];
        }
      CHECK (bad_piece == 0 && bad_score == 0 && bad_type == 0, "%zu pieces, %zu scores, %zu types differ",
             bad_piece, bad_score, bad_type);
    }
  CHECK (m->bos_id == spm_find (&spm, "<s>") && m->eos_id == spm_find (&spm, "</s>"), "bos %lld eos %lld",
         (long long) m->bos_id, (long long) m->eos_id);
  CHECK (m->im_start_id == spm_find (&spm, "[UNUSED_TOKEN_146]") && m->im_start_id >= 0,
         "im_start %lld", (long long) m->im_start_id);
  CHECK (m->im_end_id == spm_find (&spm, "[UNUSED_TOKEN_145]") && m->im_end_id >= 0,
         "im_end %lld", (long long) m->im_end_id);
  CHECK (tsr_gguf_get_bool (g, "tokenizer.ggml.add_space_prefix", &b, &err) == TSR_OK &&
         b == spm.add_dummy_prefix && b == 0, "add_space_prefix %d (tokenizer.model: %d)", b,
         spm.add_dummy_prefix);
  CHECK (tsr_gguf_get_bool (g, "tokenizer.ggml.add_bos_token", &b, &err) == TSR_OK && b == 1, "add_bos_token");
  CHECK (tsr_gguf_get_u32 (g, "tokenizer.ggml.unknown_token_id", &u, &err) == TSR_OK &&
         (int64_t) u == spm_find (&spm, "<unk>"), "unknown_token_id %u", u);
  free (scores);
  free (types);
  free_spm (&spm);
}

static void
check_tensors (const char *dir, const TsrCheckpoint *ck, const TsrGguf *g, const Cfg *c, TsrDType type,
               Stats *stats)
{
  size_t n_ck = tsr_checkpoint_n_tensors (ck), n_g = tsr_gguf_n_tensors (g);
  unsigned char *used = calloc (n_ck, 1);
  uint64_t want_n = (uint64_t) (c->L * 21 + 3 + 5 + c->VL * 16 + 6);

  CHECK (n_g == want_n, "%zu tensors, DESIGN.md's count is %llu", n_g, (unsigned long long) want_n);
  for (size_t i = 0; i < n_g; i++)
    {
      const TsrGgufTensor *t = tsr_gguf_tensor (g, i);
      const TsrCkptTensor *s;
      char hf[200];
      int sel, kind;
      TsrDType want_type;
      float *x, *y, *xs = NULL;
      uint64_t n;
      TsrError err;

      if (!source_of (t->name, hf, sizeof hf, &sel, &kind))
        {
          CHECK (0, "%s is not in DESIGN.md's naming table", t->name);
          continue;
        }
      s = tsr_checkpoint_find (ck, hf);
      if (s == NULL)
        {
          CHECK (0, "%s: its source %s is not in %s", t->name, hf, dir);
          continue;
        }
      for (size_t k = 0; k < n_ck; k++)
        if (strcmp (tsr_checkpoint_tensor (ck, k)->name, hf) == 0)
          used[k] = 1;

      want_type = kind == K_F32 ? TSR_DTYPE_F32
                : kind == K_PATCH ? (type == TSR_DTYPE_F16 || type == TSR_DTYPE_BF16 ? type : TSR_DTYPE_F32)
                : type;
      CHECK (t->type == want_type, "%s is %s, DESIGN.md says %s", t->name, tsr_dtype_name (t->type),
             tsr_dtype_name (want_type));

      /* Shape: the source's, reversed; the GN tokens squeezed; q/k/v rows. */
      if (strstr (t->name, "_gn.") != NULL)
        CHECK (t->n_dims == 1 && t->ne[0] == s->numel, "%s: %u dims, ne0 %lld", t->name, t->n_dims,
               (long long) t->ne[0]);
      else
        {
          int ok = (int) t->n_dims == s->n_dims;
          for (int d = 0; ok && d < s->n_dims; d++)
            {
              int64_t want = s->shape[s->n_dims - 1 - d];
              if (d == s->n_dims - 1 && sel != SEL_ALL)
                want = (sel == SEL_Q ? c->H : c->Hkv) * (c->E / c->H);
              ok = t->ne[d] == want;
            }
          CHECK (ok, "%s has ne {%lld, %lld, %lld, %lld}, source %s", t->name, (long long) t->ne[0],
                 (long long) t->ne[1], (long long) t->ne[2], (long long) t->ne[3], hf);
        }

      x = source_values (s);
      if (sel != SEL_ALL)
        {
          xs = select_rows (x, sel, c, s->shape[1], &n);
          free (x);
          x = xs;
        }
      else
        n = (uint64_t) s->numel;
      if (n != t->n_elements)
        {
          CHECK (0, "%s has %llu values, expected %llu", t->name, (unsigned long long) t->n_elements,
                 (unsigned long long) n);
          free (x);
          continue;
        }
      y = malloc ((size_t) n * sizeof *y);
      CHECK (tsr_dequantize_row (t->type, t->data, y, (size_t) n, &err) == TSR_OK, "%s", err.message);
      compare (t->name, hf, s->dtype, t->type, t->ne[0], x, y, n, stats);
      free (x);
      free (y);
    }
  for (size_t k = 0; k < n_ck; k++)
    CHECK (used[k], "checkpoint tensor %s is in no GGUF tensor", tsr_checkpoint_tensor (ck, k)->name);
  free (used);
}

static const TsrDType all_types[] = {
  TSR_DTYPE_F32, TSR_DTYPE_F16, TSR_DTYPE_BF16, TSR_DTYPE_Q8_0, TSR_DTYPE_Q4_0,
};

static void
roundtrip (const char *dir)
{
  const char *base = strrchr (dir, '/') ? strrchr (dir, '/') + 1 : dir;
  TsrCheckpoint *ck = NULL;
  Cfg c;
  TsrError err;
  Stats stats;

  memset (&stats, 0, sizeof stats);
  printf ("%s\n", dir);
  if (!read_cfg (dir, &c) || tsr_checkpoint_open (dir, &ck, &err) != TSR_OK)
    {
      CHECK (0, "cannot read %s", dir);
      return;
    }
  for (size_t k = 0; k < N_OF (all_types); k++)
    {
      TsrDType type = all_types[k];
      char out[512], part[520];
      TsrConvertParams p;
      Watch w;
      TsrGguf *g = NULL;
      TsrGgufModelInfo m;
      TsrStatus st;
      double t0 = now_s ();

      memset (&w, 0, sizeof w);
      w.monotonic = 1;
      snprintf (out, sizeof out, "%s/%s-%s.gguf", tmpdir, base, tsr_dtype_name (type));
      snprintf (part, sizeof part, "%s.part", out);
      tsr_convert_params_init (&p);
      p.type = (int) type;
      p.n_threads = k % 2 ? 2 : 1;
      p.progress = on_progress;
      p.note = on_note;
      p.user_data = &w;
      st = tsr_convert (dir, out, &p, &err);
      CHECK (st == TSR_OK, "convert %s to %s: %s", dir, tsr_dtype_name (type), err.message);
      if (st != TSR_OK)
        continue;
      CHECK (!file_exists (part), "%s left behind", part);
      CHECK (w.stages_seen == 15 && w.monotonic && w.last_bytes == w.total_bytes &&
             w.last_tensors == w.total_tensors && w.total_tensors > 0,
             "progress: stages %#x, monotonic %d, %llu/%llu bytes, %llu/%llu tensors", w.stages_seen,
             w.monotonic, (unsigned long long) w.last_bytes, (unsigned long long) w.total_bytes,
             (unsigned long long) w.last_tensors, (unsigned long long) w.total_tensors);
      CHECK (w.notes == 0, "%d notes for a clean checkpoint", w.notes);

      if (tsr_gguf_open (out, &g, &err) != TSR_OK)
        {
          CHECK (0, "open %s: %s", out, err.message);
          continue;
        }
      st = tsr_gguf_model_info (g, &m, &err);
      CHECK (st == TSR_OK, "tsr_gguf_model_info refuses %s: %s", out, err.message);
      {
        uint64_t data = 0;
        for (size_t i = 0; i < tsr_gguf_n_tensors (g); i++)
          data += tsr_gguf_tensor (g, i)->size;
        CHECK (data == w.total_bytes, "progress said %llu bytes, the file holds %llu",
               (unsigned long long) w.total_bytes, (unsigned long long) data);
      }
      check_metadata (dir, g, &m, &c, type);
      check_tensors (dir, ck, g, &c, type, &stats);
      printf ("  %-5s %zu tensors, %llu bytes, %.3f s\n", tsr_dtype_name (type), tsr_gguf_n_tensors (g),
              (unsigned long long) tsr_gguf_size (g), now_s () - t0);
      tsr_gguf_close (g);
      unlink (out);
    }
  printf ("  worst NMSE: q8_0 %.3g, q4_0 %.3g (bound %g)\n", stats.nmse_max[3], stats.nmse_max[4],
          GGML_NMSE_MAX);

  /* The default type is the checkpoint's own, so nothing is lost. */
  {
    char out[512];
    TsrGguf *g = NULL;
    const TsrGgufTensor *e;
    const TsrCkptTensor *s = tsr_checkpoint_find (ck, "model.tok_embeddings.weight");
    snprintf (out, sizeof out, "%s/%s-default.gguf", tmpdir, base);
    CHECK (tsr_convert (dir, out, NULL, &err) == TSR_OK, "default params: %s", err.message);
    if (tsr_gguf_open (out, &g, &err) == TSR_OK)
      {
        e = tsr_gguf_find_tensor (g, "blk.0.ffn_up.weight");
        CHECK (s && e && e->type == s->dtype, "default type %s, checkpoint %s",
               e ? tsr_dtype_name (e->type) : "?", s ? tsr_dtype_name (s->dtype) : "?");
        tsr_gguf_close (g);
      }
    unlink (out);
  }

  /* Stopping half-way leaves nothing, not even a .part, and keeps an
   * older file of the same name. */
  {
    char out[512], part[520];
    TsrConvertParams p;
    Watch w;
    FILE *f;
    memset (&w, 0, sizeof w);
    w.abort_at = 10;
    snprintf (out, sizeof out, "%s/%s-abort.gguf", tmpdir, base);
    snprintf (part, sizeof part, "%s.part", out);
    f = fopen (out, "w");
    fputs ("an older file\n", f);
    fclose (f);
    tsr_convert_params_init (&p);
    p.type = TSR_DTYPE_Q8_0;
    p.progress = on_progress;
    p.should_abort = on_abort;
    p.user_data = &w;
    CHECK (tsr_convert (dir, out, &p, &err) == TSR_ECANCELLED, "abort: %s", err.message);
    CHECK (!file_exists (part), "an aborted conversion left %s", part);
    {
      char buf[64] = "";
      f = fopen (out, "r");
      CHECK (f && fgets (buf, sizeof buf, f) && strcmp (buf, "an older file\n") == 0,
             "the older %s was touched", out);
      if (f)
        fclose (f);
    }
    unlink (out);
  }
  tsr_checkpoint_close (ck);
}

static void
api_errors (const char *dir)
{
  TsrConvertParams p;
  TsrError err;
  char out[512];

  snprintf (out, sizeof out, "%s/never.gguf", tmpdir);
  tsr_convert_params_init (&p);
  p.type = 3;   /* ggml's q4_1: not a type Tessera writes */
  CHECK (tsr_convert (dir, out, &p, &err) == TSR_EINVAL && strstr (err.message, "type 3"), "%s", err.message);
  p.type = TSR_DTYPE_F16;
  p.n_threads = -1;
  CHECK (tsr_convert (dir, out, &p, &err) == TSR_EINVAL, "%s", err.message);
  CHECK (tsr_convert (NULL, out, NULL, &err) == TSR_EINVAL, "%s", err.message);
  CHECK (tsr_convert (dir, "", NULL, &err) == TSR_EINVAL, "%s", err.message);
  CHECK (!file_exists (out), "a refused conversion wrote %s", out);
}

/* ==== A large synthetic checkpoint and the peak RSS ===================== */

typedef struct {
  char   *name;
  int     n_dims;
  int64_t shape[4];
  int     kind;       /* 0 weight, 1 norm (≈1), 2 bias (≈0) */
} Spec;

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static double
rng_normal (void)
{
  /* Irwin–Hall: enough for weights that only need to look like weights. */
  double s = 0;
  for (int i = 0; i < 4; i++)
    {
      rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
      s += (double) (rng_state >> 11) / 9007199254740992.0;
    }
  return (s - 2.0) * 1.7320508;
}

static int
write_safetensors (const char *path, Spec *specs, size_t lo, size_t hi)
{
  FILE *f = fopen (path, "wb");
  char *hdr;
  size_t cap = 1 << 20, len = 0;
  uint64_t off = 0, hlen;
  uint16_t *buf = malloc (sizeof (uint16_t) << 20);

  if (f == NULL || buf == NULL)
    return 0;
  hdr = malloc (cap);
  len += (size_t) snprintf (hdr + len, cap - len, "{\"__metadata__\":{\"format\":\"pt\"}");
  for (size_t i = lo; i < hi; i++)
    {
      int64_t numel = 1;
      for (int d = 0; d < specs[i].n_dims; d++)
        numel *= specs[i].shape[d];
      len += (size_t) snprintf (hdr + len, cap - len, ",\"%s\":{\"dtype\":\"BF16\",\"shape\":[", specs[i].name);
      for (int d = 0; d < specs[i].n_dims; d++)
        len += (size_t) snprintf (hdr + len, cap - len, "%s%lld", d ? "," : "", (long long) specs[i].shape[d]);
      len += (size_t) snprintf (hdr + len, cap - len, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long) off,
                                (unsigned long long) (off + 2 * (uint64_t) numel));
      off += 2 * (uint64_t) numel;
    }
  len += (size_t) snprintf (hdr + len, cap - len, "}");
  while (len % 8)
    hdr[len++] = ' ';
  hlen = len;
  fwrite (&hlen, 8, 1, f);
  fwrite (hdr, 1, len, f);
  for (size_t i = lo; i < hi; i++)
    {
      int64_t numel = 1, done = 0;
      double scale;
      for (int d = 0; d < specs[i].n_dims; d++)
        numel *= specs[i].shape[d];
      scale = 1.0 / sqrt ((double) specs[i].shape[specs[i].n_dims - 1]);
      while (done < numel)
        {
          int64_t k = numel - done < (1 << 20) ? numel - done : (1 << 20);
          for (int64_t j = 0; j < k; j++)
            {
              double v = rng_normal ();
              float fv = (float) (specs[i].kind == 1 ? 1 + 0.1 * v : specs[i].kind == 2 ? 0.02 * v : v * scale);
              uint32_t u;
              memcpy (&u, &fv, 4);
              buf[j] = (uint16_t) (u >> 16);
            }
          fwrite (buf, 2, (size_t) k, f);
          done += k;
        }
    }
  free (hdr);
  free (buf);
  return fclose (f) == 0;
}

static int
make_large (const char *dir, int64_t E, int64_t L, int64_t V)
{
  int64_t H = E / 128, Hkv = H >= 4 ? H / 4 : 1, hd = 128, F = (E * 11 / 4 + 255) / 256 * 256;
  int64_t QKV = (H + 2 * Hkv) * hd, rq = 8, r = 64, VE = 256, VL = 2, VF = 1024, M = 4 * VE;
  Spec *s = calloc ((size_t) (L * 17 + VL * 16 + 32), sizeof *s);
  size_t n = 0, cut;
  char path[600], cmd[1400];
  FILE *f;
  const char *tok = getenv ("TSR_TEST_TOKENIZER");

#define ADD(nm_fmt, kind_, nd, ...)                                                     \
  do {                                                                                  \
    const int64_t sh_[] = { __VA_ARGS__ };                                              \
    char nm_[200];                                                                      \
    snprintf (nm_, sizeof nm_, "%s", nm_fmt);                                           \
    s[n].name = strdup (nm_);                                                           \
    s[n].kind = (kind_);                                                                \
    s[n].n_dims = (nd);                                                                 \
    memcpy (s[n].shape, sh_, sizeof sh_);                                               \
    n++;                                                                                \
  } while (0)
  mkdir (dir, 0755);
  ADD ("model.tok_embeddings.weight", 0, 2, V, E);
  for (int64_t l = 0; l < L; l++)
    {
      char p[64], nm[200];
      snprintf (p, sizeof p, "model.layers.%lld.", (long long) l);
#define NM(suffix) (snprintf (nm, sizeof nm, "%s%s", p, suffix), nm)
      ADD (NM ("attention.wqkv.weight"), 0, 2, QKV, E);
      ADD (NM ("attention.wqkv.Plora_A.weight"), 0, 2, rq, E);
      ADD (NM ("attention.wqkv.Plora_B.weight"), 0, 2, QKV, rq);
      ADD (NM ("attention.wo.weight"), 0, 2, E, E);
      ADD (NM ("attention.wo.Plora_A.weight"), 0, 2, r, E);
      ADD (NM ("attention.wo.Plora_B.weight"), 0, 2, E, r);
      ADD (NM ("feed_forward.w1.weight"), 0, 2, F, E);
      ADD (NM ("feed_forward.w1.Plora_A.weight"), 0, 2, r, E);
      ADD (NM ("feed_forward.w1.Plora_B.weight"), 0, 2, F, r);
      ADD (NM ("feed_forward.w3.weight"), 0, 2, F, E);
      ADD (NM ("feed_forward.w3.Plora_A.weight"), 0, 2, r, E);
      ADD (NM ("feed_forward.w3.Plora_B.weight"), 0, 2, F, r);
      ADD (NM ("feed_forward.w2.weight"), 0, 2, E, F);
      ADD (NM ("feed_forward.w2.Plora_A.weight"), 0, 2, r, F);
      ADD (NM ("feed_forward.w2.Plora_B.weight"), 0, 2, E, r);
      ADD (NM ("attention_norm.weight"), 1, 1, E);
      ADD (NM ("ffn_norm.weight"), 1, 1, E);
#undef NM
    }
  ADD ("model.norm.weight", 1, 1, E);
  ADD ("output.weight", 0, 2, V, E);
  cut = n;
  {
    const char *v = "vit.vision_tower.vision_model.";
    char nm[200];
#define VN(suffix) (snprintf (nm, sizeof nm, "%s%s", v, suffix), nm)
    ADD (VN ("embeddings.class_embedding"), 0, 1, VE);
    ADD (VN ("embeddings.patch_embedding.weight"), 0, 4, VE, 3, 14, 14);
    ADD (VN ("embeddings.position_embedding.weight"), 0, 2, 577, VE);
    ADD (VN ("pre_layrnorm.weight"), 1, 1, VE);
    ADD (VN ("pre_layrnorm.bias"), 2, 1, VE);
#undef VN
    for (int64_t m = 0; m < VL; m++)
      {
        static const char *const pr[] = { "q_proj", "k_proj", "v_proj", "out_proj" };
        for (int k = 0; k < 4; k++)
          {
            snprintf (nm, sizeof nm, "%sencoder.layers.%lld.self_attn.%s.weight", v, (long long) m, pr[k]);
            ADD (nm, 0, 2, VE, VE);
            snprintf (nm, sizeof nm, "%sencoder.layers.%lld.self_attn.%s.bias", v, (long long) m, pr[k]);
            ADD (nm, 2, 1, VE);
          }
#define LN(suffix) (snprintf (nm, sizeof nm, "%sencoder.layers.%lld.%s", v, (long long) m, suffix), nm)
        ADD (LN ("layer_norm1.weight"), 1, 1, VE);
        ADD (LN ("layer_norm1.bias"), 2, 1, VE);
        ADD (LN ("layer_norm2.weight"), 1, 1, VE);
        ADD (LN ("layer_norm2.bias"), 2, 1, VE);
        ADD (LN ("mlp.fc1.weight"), 0, 2, VF, VE);
        ADD (LN ("mlp.fc1.bias"), 2, 1, VF);
        ADD (LN ("mlp.fc2.weight"), 0, 2, VE, VF);
        ADD (LN ("mlp.fc2.bias"), 2, 1, VE);
#undef LN
      }
  }
  ADD ("vision_proj.0.weight", 0, 2, E, M);
  ADD ("vision_proj.0.bias", 2, 1, E);
  ADD ("vision_proj.2.weight", 0, 2, E, E);
  ADD ("vision_proj.2.bias", 2, 1, E);
  ADD ("plora_glb_GN", 0, 3, 1, 1, M);
  ADD ("plora_sub_GN", 0, 4, 1, 1, 1, M);
#undef ADD

  snprintf (path, sizeof path, "%s/model-00001-of-00002.safetensors", dir);
  if (!write_safetensors (path, s, 0, cut))
    return 0;
  snprintf (path, sizeof path, "%s/model-00002-of-00002.safetensors", dir);
  if (!write_safetensors (path, s, cut, n))
    return 0;
  snprintf (path, sizeof path, "%s/model.safetensors.index.json", dir);
  f = fopen (path, "w");
  fprintf (f, "{\"metadata\":{},\"weight_map\":{");
  for (size_t i = 0; i < n; i++)
    fprintf (f, "%s\"%s\":\"model-0000%d-of-00002.safetensors\"", i ? "," : "", s[i].name, i < cut ? 1 : 2);
  fprintf (f, "}}\n");
  fclose (f);
  snprintf (path, sizeof path, "%s/config.json", dir);
  f = fopen (path, "w");
  fprintf (f, "{\"architectures\":[\"InternLM2ForCausalLM\"],\"hidden_size\":%lld,\"num_hidden_layers\":%lld,"
           "\"num_attention_heads\":%lld,\"num_key_value_heads\":%lld,\"intermediate_size\":%lld,"
           "\"vocab_size\":%lld,\"rms_norm_eps\":1e-05,\"rope_theta\":1000000,"
           "\"max_position_embeddings\":32768,\"max_length\":16384,"
           "\"vision_config\":{\"hidden_size\":%lld,\"num_hidden_layers\":%lld,\"num_attention_heads\":4,"
           "\"intermediate_size\":%lld},\"plora_alpha\":{\"wqkv\":16,\"wo\":64,\"w1\":64,\"w2\":64,\"w3\":64}}\n",
           (long long) E, (long long) L, (long long) H, (long long) Hkv, (long long) F, (long long) V,
           (long long) VE, (long long) VL, (long long) VF);
  fclose (f);
  if (tok == NULL)
    {
      fprintf (stderr, "set TSR_TEST_TOKENIZER to a tokenizer.model to copy\n");
      return 0;
    }
  snprintf (cmd, sizeof cmd, "cp '%s' '%s/tokenizer.model'", tok, dir);
  if (system (cmd) != 0)
    return 0;
  for (size_t i = 0; i < n; i++)
    free (s[i].name);
  free (s);
  return 1;
}

/* Converts in a child, whose ru_maxrss is then its own peak alone. */
static int
rss_child (const char *dir, const char *out, TsrDType type, int threads, long *base_kb, long *peak_kb,
           double *secs)
{
  int pfd[2];
  pid_t pid;
  int status = 0;
  struct rusage ru;
  long base = 0;

  if (pipe (pfd) != 0)
    return 0;
  fflush (stdout);
  fflush (stderr);
  pid = fork ();
  if (pid == 0)
    {
      TsrConvertParams p;
      TsrError err;
      struct rusage r0;
      close (pfd[0]);
      getrusage (RUSAGE_SELF, &r0);
      if (write (pfd[1], &r0.ru_maxrss, sizeof r0.ru_maxrss) < 0)
        _exit (3);
      tsr_convert_params_init (&p);
      p.type = (int) type;
      p.n_threads = threads;
      if (tsr_convert (dir, out, &p, &err) != TSR_OK)
        {
          fprintf (stderr, "%s\n", err.message);
          _exit (1);
        }
      _exit (0);
    }
  close (pfd[1]);
  {
    double t0 = now_s ();
    if (read (pfd[0], &base, sizeof base) != (ssize_t) sizeof base)
      base = 0;
    close (pfd[0]);
    if (wait4 (pid, &status, 0, &ru) < 0 || !WIFEXITED (status) || WEXITSTATUS (status) != 0)
      return 0;
    *secs = now_s () - t0;
  }
  *base_kb = base;
  *peak_kb = ru.ru_maxrss;
  return 1;
}

static int
files_equal (const char *a, const char *b)
{
  FILE *fa = fopen (a, "rb"), *fb = fopen (b, "rb");
  int eq = fa && fb;
  static char ba[1 << 16], bb[1 << 16];
  while (eq)
    {
      size_t na = fread (ba, 1, sizeof ba, fa), nb = fread (bb, 1, sizeof bb, fb);
      if (na != nb || memcmp (ba, bb, na) != 0)
        eq = 0;
      if (na == 0)
        break;
    }
  if (fa)
    fclose (fa);
  if (fb)
    fclose (fb);
  return eq;
}

static void
rss (const char *dir, TsrDType type, int threads)
{
  TsrCheckpoint *ck = NULL;
  TsrError err;
  size_t largest = 0;
  const char *largest_name = "";
  uint64_t total = 0;
  char out[512], out1[520];
  long base = 0, peak = 0;
  double secs = 0;

  if (tsr_checkpoint_open (dir, &ck, &err) != TSR_OK)
    {
      CHECK (0, "%s", err.message);
      return;
    }
  for (size_t i = 0; i < tsr_checkpoint_n_tensors (ck); i++)
    {
      const TsrCkptTensor *t = tsr_checkpoint_tensor (ck, i);
      total += t->nbytes;
      if (t->nbytes > largest)
        {
          largest = t->nbytes;
          largest_name = t->name;
        }
    }
  printf ("checkpoint %s: %zu tensors, %.1f MB; largest %s, %.1f MB\n", dir, tsr_checkpoint_n_tensors (ck),
          (double) total / 1e6, largest_name, (double) largest / 1e6);
  snprintf (out, sizeof out, "%s/large-%s.gguf", tmpdir, tsr_dtype_name (type));
  if (!rss_child (dir, out, type, 1, &base, &peak, &secs))
    CHECK (0, "converting %s failed", dir);
  else
    {
      long bound = base + (long) (largest / 1024) + 64 * 1024;
      printf ("to %s (1 thread): %.2f s, %.0f MB/s of checkpoint; peak RSS %.1f MB "
              "(%.1f MB before converting; bound %.1f MB)\n", tsr_dtype_name (type), secs,
              (double) total / 1e6 / secs, peak / 1024.0, base / 1024.0, bound / 1024.0);
      CHECK (peak <= bound, "peak RSS %ld kB above baseline %ld kB + largest tensor %zu kB + 64 MB", peak,
             base, largest / 1024);
    }
  if (threads > 1)
    {
      snprintf (out1, sizeof out1, "%s.1", out);
      rename (out, out1);
      if (!rss_child (dir, out, type, threads, &base, &peak, &secs))
        CHECK (0, "converting %s with %d threads failed", dir, threads);
      else
        {
          long bound = base + (long) (largest / 1024) + 64 * 1024;
          printf ("to %s (%d threads): %.2f s, %.0f MB/s; peak RSS %.1f MB\n", tsr_dtype_name (type), threads,
                  secs, (double) total / 1e6 / secs, peak / 1024.0);
          CHECK (peak <= bound, "peak RSS %ld kB with %d threads", peak, threads);
          CHECK (files_equal (out, out1), "%d threads wrote other bytes than 1", threads);
        }
      unlink (out1);
    }
  unlink (out);
  tsr_checkpoint_close (ck);
}

int
main (int argc, char **argv)
{
  const char *t = getenv ("TMPDIR");
  setvbuf (stdout, NULL, _IOLBF, 0);
  snprintf (tmpdir, sizeof tmpdir, "%s/test-convert-XXXXXX", t && *t ? t : "/tmp");
  if (argc >= 2 && strcmp (argv[1], "--make-large") == 0)
    {
      if (argc != 6)
        return 2;
      return make_large (argv[2], atoll (argv[3]), atoll (argv[4]), atoll (argv[5])) ? 0 : 1;
    }
  if (mkdtemp (tmpdir) == NULL)
    {
      perror ("mkdtemp");
      return 99;
    }
  if (argc >= 4 && strcmp (argv[1], "--rss") == 0)
    {
      TsrDType type;
      if (!tsr_dtype_from_name (argv[3], &type))
        return 2;
      rss (argv[2], type, argc >= 5 ? atoi (argv[4]) : 0);
    }
  else if (argc >= 2)
    {
      api_errors (argv[1]);
      for (int i = 1; i < argc; i++)
        roundtrip (argv[i]);
    }
  else
    {
      fprintf (stderr, "usage: test-convert HF_DIR… | --rss HF_DIR TYPE [THREADS] | "
                       "--make-large DIR HIDDEN LAYERS VOCAB\n");
      return 2;
    }
  rmdir (tmpdir);
  printf ("%d checks, %d failed\n", n_checks, n_failed);
  return n_failed ? 1 : 0;
}
