/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tessera-cli info — what a GGUF model file holds, and whether Tessera can
 * run it. Exit 0 for a model Tessera runs; 1 (with the reason on stderr)
 * for a file it cannot run, a synthetic benchmark model included.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "tessera-cli.h"
#include "tessera-engine.h"

typedef enum {
  GROUP_EMBEDDING,
  GROUP_ATTENTION,
  GROUP_FFN,
  GROUP_NORMS,
  GROUP_OUTPUT,
  GROUP_PLORA,
  GROUP_VISION,
  GROUP_PROJECTOR,
  GROUP_OTHER,
  N_GROUPS
} Group;

static const char *const group_names[N_GROUPS] = {
  "token embedding", "attention", "FFN", "norms", "output head", "PLoRA", "vision", "projector", "other",
};

/* Sorts a tensor into a group by its name (DESIGN.md's naming table). */
static Group
group_of (const char *name)
{
  if (g_str_has_prefix (name, "token_embd."))
    return GROUP_EMBEDDING;
  if (strstr (name, ".lora_a.") || strstr (name, ".lora_b."))
    return GROUP_PLORA;
  if (g_str_has_prefix (name, "v."))
    return GROUP_VISION;
  if (g_str_has_prefix (name, "mm."))
    return GROUP_PROJECTOR;
  if (g_str_has_prefix (name, "output."))
    return GROUP_OUTPUT;
  if (strstr (name, "_norm."))
    return GROUP_NORMS;
  if (g_str_has_prefix (name, "blk."))
    {
      const char *p = strchr (name + 4, '.');
      if (p && g_str_has_prefix (p + 1, "attn_"))
        return GROUP_ATTENTION;
      if (p && g_str_has_prefix (p + 1, "ffn_"))
        return GROUP_FFN;
    }
  return GROUP_OTHER;
}

/* The dtypes Tessera reads, in a fixed display order. */
static const TsrDType dtypes[] = {
  TSR_DTYPE_F32, TSR_DTYPE_F16, TSR_DTYPE_BF16, TSR_DTYPE_Q8_0, TSR_DTYPE_Q4_0,
};
#define N_DTYPES G_N_ELEMENTS (dtypes)

static int
dtype_slot (TsrDType t)
{
  for (guint i = 0; i < N_DTYPES; i++)
    if (dtypes[i] == t)
      return (int) i;
  return 0;
}

static char *
size_text (guint64 bytes)
{
  return g_format_size_full (bytes, G_FORMAT_SIZE_IEC_UNITS);
}

/* A token's text for display: printable, quoted, at most 24 bytes. */
static char *
token_text (const TsrGgufStr *tokens, guint64 n, gint64 id)
{
  GString *s;
  if (id < 0 || (guint64) id >= n)
    return g_strdup ("");
  s = g_string_new (" \"");
  for (guint64 i = 0; i < tokens[id].len && i < 24; i++)
    {
      unsigned char c = (unsigned char) tokens[id].ptr[i];
      if (c == '"' || c == '\\')
        g_string_append_printf (s, "\\%c", c);
      else if (c < 0x20 || c == 0x7f)
        g_string_append_printf (s, "\\x%02x", c);
      else
        g_string_append_c (s, (char) c);
    }
  g_string_append_c (s, '"');
  return g_string_free (s, FALSE);
}

static void
print_groups (const TsrGguf *g)
{
  guint64 count[N_GROUPS][N_DTYPES] = { { 0 } };
  guint64 bytes[N_GROUPS] = { 0 };
  guint64 type_count[N_DTYPES] = { 0 }, type_bytes[N_DTYPES] = { 0 }, total = 0;
  g_autofree char *total_text = NULL;

  for (size_t i = 0; i < tsr_gguf_n_tensors (g); i++)
    {
      const TsrGgufTensor *t = tsr_gguf_tensor (g, i);
      int k = dtype_slot (t->type);
      Group grp = group_of (t->name);
      count[grp][k]++;
      bytes[grp] += t->size;
      type_count[k]++;
      type_bytes[k] += t->size;
      total += t->size;
    }

  total_text = size_text (total);
  printf ("tensors       %zu, %s of data\n", tsr_gguf_n_tensors (g), total_text);
  for (guint k = 0; k < N_DTYPES; k++)
    if (type_count[k])
      {
        g_autofree char *b = size_text (type_bytes[k]);
        printf ("  %-11s %" G_GUINT64_FORMAT " tensor%s, %" G_GUINT64_FORMAT " bytes (%s)\n",
                tsr_dtype_name (dtypes[k]), type_count[k], type_count[k] == 1 ? "" : "s",
                type_bytes[k], b);
      }
  printf ("dtype by group\n");
  for (int grp = 0; grp < N_GROUPS; grp++)
    {
      GString *line;
      g_autofree char *b = NULL;
      if (bytes[grp] == 0 && count[grp][0] + count[grp][1] + count[grp][2] + count[grp][3] + count[grp][4] == 0)
        continue;
      line = g_string_new (NULL);
      for (guint k = 0; k < N_DTYPES; k++)
        if (count[grp][k])
          g_string_append_printf (line, "%s%s ×%" G_GUINT64_FORMAT, line->len ? ", " : "",
                                  tsr_dtype_name (dtypes[k]), count[grp][k]);
      b = size_text (bytes[grp]);
      printf ("  %-17s %s (%s)\n", group_names[grp], line->str, b);
      g_string_free (line, TRUE);
    }
}

static void
print_model (const TsrGguf *g, const TsrGgufModelInfo *m)
{
  if (m->n_layer == 0)
    return;
  printf ("decoder       %u layer%s, width %u, FFN %u, %u heads of %u (%u key/value head%s)",
          m->n_layer, m->n_layer == 1 ? "" : "s", m->n_embd, m->n_ff, m->n_head, m->n_head_dim,
          m->n_head_kv, m->n_head_kv == 1 ? "" : "s");
  if (m->n_ctx)
    printf (", context %u", m->n_ctx);
  printf ("\n              RMSNorm eps %g, RoPE base %g, vocabulary %u, %s\n",
          (double) m->rms_eps, (double) m->rope_freq_base, m->n_vocab,
          m->tied_output ? "output head tied to the embedding" : "separate output head");
  if (m->arch == TSR_ARCH_INTERNLM2_4KHD && m->plora_rank[0])
    {
      printf ("PLoRA        ");
      for (int k = 0; k < TSR_PLORA_COUNT; k++)
        printf ("%s %s r=%u s=%g", k ? "," : "", tsr_plora_name (k), m->plora_rank[k],
                (double) m->plora_scale[k]);
      printf ("\n");
    }
  if (m->arch == TSR_ARCH_INTERNLM2_4KHD && m->v_n_layer)
    {
      printf ("vision        %u layer%s, width %u, FFN %u, %u heads, %u-pixel views in %u-pixel patches\n",
              m->v_n_layer, m->v_n_layer == 1 ? "" : "s", m->v_n_embd, m->v_n_ff, m->v_n_head, m->v_image_size, m->v_patch_size);
      printf ("projector     %u → %u → %u\n", m->mm_n_in, m->n_embd, m->n_embd);
    }
  (void) g;
}

static void
print_tokenizer (const TsrGguf *g, const TsrGgufModelInfo *m)
{
  const TsrGgufStr *tokens = NULL;
  guint64 n = 0;
  g_autofree char *bos = NULL, *eos = NULL;

  if (tsr_gguf_get_arr_str (g, "tokenizer.ggml.tokens", &tokens, &n, NULL) != TSR_OK)
    {
      printf ("tokenizer     none\n");
      return;
    }
  bos = token_text (tokens, n, m->bos_id);
  eos = token_text (tokens, n, m->eos_id);
  printf ("tokenizer     %s%s, %" G_GUINT64_FORMAT " tokens", m->tok_model[0] ? m->tok_model : "?",
          strcmp (m->tok_model, "llama") == 0 ? " (SentencePiece BPE)" : "", n);
  if (m->bos_id >= 0)
    printf (", BOS %" G_GINT64_FORMAT "%s", m->bos_id, bos);
  if (m->eos_id >= 0)
    printf (", EOS %" G_GINT64_FORMAT "%s", m->eos_id, eos);
  printf ("\n");
  if (m->im_start_id >= 0 || m->im_end_id >= 0)
    {
      g_autofree char *s = token_text (tokens, n, m->im_start_id);
      g_autofree char *e = token_text (tokens, n, m->im_end_id);
      printf ("chat          turn start %" G_GINT64_FORMAT "%s, turn end %" G_GINT64_FORMAT "%s\n",
              m->im_start_id, s, m->im_end_id, e);
    }
}

int
cli_info (int argc, char **argv)
{
  const char *path = NULL;
  int threads = 0;
  TsrGguf *g = NULL;
  TsrGgufModelInfo m;
  TsrError err, merr;
  TsrStatus st;
  g_autofree char *size = NULL, *base = NULL;

  for (int i = 1; i < argc; i++)
    {
      const char *a = argv[i];
      if (strcmp (a, "--threads") == 0)
        {
          if (i + 1 >= argc || !cli_parse_int (argv[++i], 1, 1024, &threads))
            return cli_fail (CLI_EXIT_USAGE, "--threads takes a whole number from 1 to 1024");
        }
      else if (a[0] == '-' && a[1] != '\0')
        return cli_fail (CLI_EXIT_USAGE, "info: unknown option '%s'", a);
      else if (path == NULL)
        path = a;
      else
        return cli_fail (CLI_EXIT_USAGE, "info takes one MODEL.gguf, got also '%s'", a);
    }
  if (path == NULL)
    return cli_fail (CLI_EXIT_USAGE, "usage: tessera-cli info MODEL.gguf");

  if ((st = tsr_gguf_open (path, &g, &err)) != TSR_OK)
    return cli_fail (CLI_EXIT_RUNTIME, "%s", err.message);

  st = tsr_gguf_model_info (g, &m, &merr);
  size = size_text (tsr_gguf_size (g));
  base = g_path_get_basename (path);
  printf ("file          %s\n", base);
  printf ("format        GGUF v%u, %s, alignment %u, %zu metadata entries\n", tsr_gguf_version (g), size,
          tsr_gguf_alignment (g), tsr_gguf_n_kv (g));
  printf ("architecture  %s%s%s%s\n", m.arch_name[0] ? m.arch_name : "(none)",
          m.name[0] ? " (\"" : "", m.name, m.name[0] ? "\")" : "");
  print_model (g, &m);
  print_groups (g);
  print_tokenizer (g, &m);

  if (st != TSR_OK)
    {
      printf ("verdict       Tessera cannot run this file: %s\n", merr.message);
      tsr_gguf_close (g);
      return cli_fail (CLI_EXIT_RUNTIME, "%s", merr.message);
    }
  if (m.synthetic)
    {
      printf ("verdict       a synthetic model with random weights (tessera.synthetic): for "
              "'tessera-cli bench' only; Tessera will not chat with it\n");
      tsr_gguf_close (g);
      return cli_fail (CLI_EXIT_RUNTIME, "%s is a synthetic benchmark model with random weights; "
                       "it cannot answer questions: convert the real checkpoint with "
                       "'tessera-cli convert'", path);
    }
  if (m.arch == TSR_ARCH_LLAMA)
    printf ("verdict       a llama language model: Tessera can run it as a plain language model "
            "with 'tessera-cli complete' (text only, no chat template, no images)\n");
  else
    printf ("verdict       an InternLM-XComposer2-4KHD model: Tessera can chat with it about "
            "images ('tessera-cli ask', or the Tessera app)\n");
  tsr_gguf_close (g);
  return CLI_EXIT_OK;
}
