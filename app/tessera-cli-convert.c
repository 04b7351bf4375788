/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tessera-cli convert — a Hugging Face InternLM-XComposer2-4KHD folder into
 * the GGUF file Tessera runs (tsr_convert in the engine does the work).
 *
 * stderr carries the progress: one line rewritten in place on a terminal,
 * a plain line per stage and per tenth of the work otherwise (logs and
 * scripts should not fill up with carriage returns). stdout gets one
 * summary line at the end. Ctrl-C stops cleanly: the partial file is
 * removed, as on any failure.
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "tessera-cli.h"
#include "tessera-engine.h"

static const char usage[] =
  "usage: tessera-cli convert [--type f32|f16|bf16|q8_0|q4_0] [--threads N] HF_DIR OUT.gguf";

static volatile sig_atomic_t interrupted;

static void
on_signal (int sig)
{
  (void) sig;
  interrupted = 1;
}

typedef struct {
  gboolean    tty;
  gboolean    line_open;    /* a progress line waits for its newline (tty) */
  gint64      last_draw;    /* µs */
  int         last_tenth;
  const char *last_stage;
  gint64      start;
} Ui;

static void
end_line (Ui *ui)
{
  if (ui->line_open)
    {
      fputs ("\r\033[K", stderr);
      ui->line_open = FALSE;
    }
}

static void
on_progress (const TsrConvertProgress *p, void *user_data)
{
  Ui *ui = user_data;
  gint64 now = g_get_monotonic_time ();
  int tenth = p->bytes_total ? (int) (p->bytes_done * 10 / p->bytes_total) : 0;
  gboolean new_stage = ui->last_stage == NULL || strcmp (ui->last_stage, p->stage) != 0;
  g_autofree char *done = g_format_size (p->bytes_done), *total = g_format_size (p->bytes_total);

  if (ui->tty)
    {
      /* A terminal redraws at most ten times a second. */
      if (!new_stage && now - ui->last_draw < 100000)
        return;
      g_autofree char *line = NULL;
      struct winsize ws;
      if (p->bytes_total == 0)
        line = g_strdup_printf ("convert: %s", p->stage);
      else
        line = g_strdup_printf ("convert: %-10s %3d%%  %" G_GUINT64_FORMAT "/%" G_GUINT64_FORMAT
                                " tensors  %s of %s  %s", p->stage, (int) (p->bytes_done * 100 / p->bytes_total),
                                p->tensors_done, p->tensors_total, done, total, p->tensor ? p->tensor : "");
      /* A line that wraps could no longer be redrawn in place. */
      if (ioctl (STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 &&
          g_utf8_strlen (line, -1) >= ws.ws_col)
        *g_utf8_offset_to_pointer (line, ws.ws_col - 1) = '\0';
      fprintf (stderr, "\r\033[K%s", line);
      fflush (stderr);
      ui->line_open = TRUE;
      ui->last_draw = now;
    }
  else if (new_stage || (strcmp (p->stage, "converting") == 0 && tenth > ui->last_tenth))
    {
      if (strcmp (p->stage, "converting") == 0)
        fprintf (stderr, "convert: %s %d%% (%" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT
                 " tensors, %s of %s)\n", p->stage, tenth * 10, p->tensors_done, p->tensors_total,
                 done, total);
      else
        fprintf (stderr, "convert: %s\n", p->stage);
    }
  ui->last_stage = p->stage;
  if (strcmp (p->stage, "converting") == 0)
    ui->last_tenth = tenth;
}

static void
on_note (const char *message, void *user_data)
{
  Ui *ui = user_data;
  end_line (ui);
  fprintf (stderr, "tessera-cli: note: %s\n", message);
}

static int
on_abort (void *user_data)
{
  (void) user_data;
  return interrupted;
}

int
cli_convert (int argc, char **argv)
{
  const char *hf_dir = NULL, *out = NULL;
  int threads = 0;
  TsrConvertParams params;
  struct sigaction sa, old_int, old_term;
  TsrError err;
  TsrStatus st;
  Ui ui;
  double secs;

  tsr_convert_params_init (&params);
  for (int i = 1; i < argc; i++)
    {
      const char *a = argv[i];
      if (strcmp (a, "--type") == 0 || strcmp (a, "--threads") == 0)
        {
          const char *v;
          if (i + 1 >= argc)
            return cli_fail (CLI_EXIT_USAGE, "%s needs a value", a);
          v = argv[++i];
          if (a[3] == 'y')
            {
              TsrDType t;
              if (!tsr_dtype_from_name (v, &t))
                return cli_fail (CLI_EXIT_USAGE, "unsupported --type '%s'; choose f32, f16, bf16, q8_0 "
                                 "or q4_0", v);
              params.type = (int) t;
            }
          else if (!cli_parse_int (v, 1, 1024, &threads))
            return cli_fail (CLI_EXIT_USAGE, "--threads takes a whole number from 1 to 1024, not '%s'", v);
        }
      else if (a[0] == '-' && a[1] != '\0')
        return cli_fail (CLI_EXIT_USAGE, "convert: unknown option '%s'; %s", a, usage);
      else if (hf_dir == NULL)
        hf_dir = a;
      else if (out == NULL)
        out = a;
      else
        return cli_fail (CLI_EXIT_USAGE, "convert takes HF_DIR and OUT.gguf, got also '%s'", a);
    }
  if (hf_dir == NULL || out == NULL)
    return cli_fail (CLI_EXIT_USAGE, "%s", usage);

  memset (&ui, 0, sizeof ui);
  ui.tty = isatty (STDERR_FILENO);
  ui.start = g_get_monotonic_time ();
  params.n_threads = threads;
  params.progress = on_progress;
  params.note = on_note;
  params.should_abort = on_abort;
  params.user_data = &ui;

  /* Ctrl-C or a kill asks the converter to stop at its next step, so the
   * partial OUT.gguf.part is removed instead of left behind. */
  memset (&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset (&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction (SIGINT, &sa, &old_int);
  sigaction (SIGTERM, &sa, &old_term);

  st = tsr_convert (hf_dir, out, &params, &err);

  sigaction (SIGINT, &old_int, NULL);
  sigaction (SIGTERM, &old_term, NULL);
  end_line (&ui);
  if (st != TSR_OK)
    return cli_fail (CLI_EXIT_RUNTIME, "%s", err.message);

  secs = (double) (g_get_monotonic_time () - ui.start) / 1e6;
  {
    TsrGguf *g = NULL;
    guint64 data = 0;
    size_t n = 0;
    /* The summary reads the file back: what it says is what was written. */
    if (tsr_gguf_open (out, &g, &err) != TSR_OK)
      return cli_fail (CLI_EXIT_RUNTIME, "%s", err.message);
    n = tsr_gguf_n_tensors (g);
    for (size_t i = 0; i < n; i++)
      data += tsr_gguf_tensor (g, i)->size;
    {
      g_autofree char *size = g_format_size (data);
      printf ("wrote %s: %zu tensors, %s of weights in %.1f s (%.0f MB/s)\n", out, n, size, secs,
              secs > 0 ? (double) data / 1e6 / secs : 0.0);
    }
    tsr_gguf_close (g);
  }
  return CLI_EXIT_OK;
}
