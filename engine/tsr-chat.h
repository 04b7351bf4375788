/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tsr-chat.h — chat sessions (API: tessera-engine.h, "Generation and
 * chat"), and the piece of them tests reach directly: the stream that
 * turns decoded answer text into the cleaned pieces the token callback
 * gets.
 */
#ifndef TSR_CHAT_H
#define TSR_CHAT_H

#include <stddef.h>

#include "tessera-engine.h"

/* Raw answer text in, cleaned text out, piece by piece, such that the
 * pieces add up to tsr_chat_clean_up (text cut at the first marker).
 * Text that a later piece could still change — a tail that may begin a
 * clean-up pattern, or the start of the marker — waits. */
typedef struct {
  char       *raw;        /* the answer so far, cut at the marker once seen */
  size_t      n_raw, cap_raw;
  char       *sent;       /* cleaned text handed out so far */
  size_t      n_sent, cap_sent;
  char       *work;       /* scratch for cleaning */
  size_t      cap_work;
  const char *marker;     /* the im_end text */
  size_t      marker_len;
  int         cut;        /* the marker was seen */
} TsrTextStream;

void      tsr_text_stream_init (TsrTextStream *s, const char *marker, size_t marker_len);
void      tsr_text_stream_fini (TsrTextStream *s);
/* Adds len bytes of raw text (whole UTF-8 characters); `final` releases
 * everything held back. *out and *n_out: the new cleaned text (inside the
 * stream, valid until the next call). TSR_ENOMEM only. */
TsrStatus tsr_text_stream_push (TsrTextStream *s, const char *text, size_t len, int final,
                                const char **out, size_t *n_out, TsrError *err);

#endif
