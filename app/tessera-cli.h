/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tessera-cli.h — shared plumbing of tessera-cli's commands: the contract's
 * exit codes and its one-line error format.
 */
#pragma once

#include <glib.h>

enum {
  CLI_EXIT_OK = 0,
  CLI_EXIT_RUNTIME = 1,
  CLI_EXIT_USAGE = 2,
};

/* Prints "tessera-cli: error: …" on stderr and returns `code`. */
int  cli_fail (int code, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

/* Parses a whole decimal integer in [min, max]; FALSE if it is not one. */
gboolean cli_parse_int (const char *text, int min, int max, int *out);

int  cli_grid (int argc, char **argv);
int  cli_info (int argc, char **argv);
int  cli_preprocess (int argc, char **argv);
int  cli_bench (int argc, char **argv);
int  cli_bench_kernels (int argc, char **argv);
int  cli_encode (int argc, char **argv);
int  cli_bench_vision (int argc, char **argv);
int  cli_complete (int argc, char **argv);
int  cli_tokenize (int argc, char **argv);
int  cli_ask (int argc, char **argv);
int  cli_logits (int argc, char **argv);
int  cli_convert (int argc, char **argv);
int  cli_synth (int argc, char **argv);
int  cli_bench_llm (int argc, char **argv);
