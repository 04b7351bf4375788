/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tessera-cli — the engine without a display. Its flags and outputs are a
 * contract (design.md): tests and scripts depend on them.
 */
#include "config.h"

#include <errno.h>
#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tessera-blas-setup.h"
#include "tessera-cli.h"

int
cli_fail (int code, const char *fmt, ...)
{
  va_list ap;
  g_autofree char *msg = NULL;
  va_start (ap, fmt);
  msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  /* One line, always: scripts read the first line of stderr. */
  g_strdelimit (msg, "\n", ' ');
  fprintf (stderr, "tessera-cli: error: %s\n", msg);
  return code;
}

gboolean
cli_parse_int (const char *text, int min, int max, int *out)
{
  char *end = NULL;
  long v;
  if (text == NULL || *text == '\0')
    return FALSE;
  errno = 0;
  v = strtol (text, &end, 10);
  if (errno != 0 || *end != '\0' || v < min || v > max)
    return FALSE;
  *out = (int) v;
  return TRUE;
}

static void
print_usage (FILE *out)
{
  fputs ("Usage: tessera-cli COMMAND [OPTIONS…]\n"
         "\n"
         "Commands:\n"
         "  grid [--hd N] [--json] (IMAGE | WxH)   how the model tiles an image at HD-N\n"
         "  info MODEL.gguf                        what a model file holds; exit 1 if Tessera cannot run it\n"
         "  preprocess [--hd N] IMAGE --out DIR    the model's input tensors: DIR/global.npy, DIR/hd.npy\n"
         "  encode --model M --image IMG [--hd N] --out F.npy   the image's projected embeddings [T, hidden]\n"
         "  bench vision [--type T] [--full]       the vision path's speed on random full-size weights\n"
         "  convert [--type T] HF_DIR OUT.gguf     a Hugging Face folder into a model file (T: f32 f16 bf16 q8_0 q4_0)\n"
         "  bench MODE …                           timings; modes: kernels, llm, preprocess, vision\n"
         "  synth [--type T] [--layers N] OUT.gguf a model of the real shapes with random weights,\n"
         "                                         for 'bench llm' only (--embd, --ff, --heads, --kv-heads,\n"
         "                                         --vocab, --v-layers, --v-embd, --v-ff, --v-heads, --ranks\n"
         "                                         RQKV,R and --seed shrink or vary it, for tests)\n"
         "  bench llm --model M [--prompt 512,4096] [--decode K] [--kv f32|f16]   prefill and decode speed\n"
         "  tokenize (--model M | --tokenizer T) [--bos] TEXT   token ids\n"
         "  complete --model M [--max-new-tokens K] [--temperature T] TEXT\n"
         "                                         continue TEXT with a plain language model\n"
         "  ask --model M [--image IMG] [--hd N] [--max-new-tokens K] [--beams B] [--temperature T] QUESTION\n"
         "                                         answer a question (about an image: <ImageHere> in the\n"
         "                                         question marks its place, else it goes first); greedy\n"
         "                                         unless T > 0 (sampling) or B > 1; more: ask --help\n"
         "  logits --model M [--image IMG] [--hd N] --question Q --out F.npy\n"
         "                                         logits of the answer's first token [vocab] f32\n"
         "\n"
         "Every command takes --threads N.\n"
         "Exit status: 0 success, 1 runtime error, 2 usage error.\n", out);
}

typedef struct {
  const char *name;
  int (*run) (int argc, char **argv);
} Command;

static const Command commands[] = {
  { "grid", cli_grid },
  { "info", cli_info },
  { "preprocess", cli_preprocess },
  { "bench", cli_bench },
  { "encode", cli_encode },
  { "complete", cli_complete },
  { "tokenize", cli_tokenize },
  { "ask", cli_ask },
  { "logits", cli_logits },
  { "convert", cli_convert },
  { "synth", cli_synth },
};

int
main (int argc, char **argv)
{
  tessera_blas_setup (argv);
  setlocale (LC_ALL, "");
  /* Numbers in our outputs are for machines: keep '.' as the decimal point. */
  setlocale (LC_NUMERIC, "C");

  if (argc < 2)
    {
      print_usage (stderr);
      return CLI_EXIT_USAGE;
    }
  if (strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "-h") == 0 || strcmp (argv[1], "help") == 0)
    {
      print_usage (stdout);
      return CLI_EXIT_OK;
    }
  for (size_t i = 0; i < G_N_ELEMENTS (commands); i++)
    if (strcmp (argv[1], commands[i].name) == 0)
      return commands[i].run (argc - 1, argv + 1);

  return cli_fail (CLI_EXIT_USAGE, "unknown command '%s'; run 'tessera-cli --help' for the list",
                   argv[1]);
}
