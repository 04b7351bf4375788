/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "tsr-error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *
tsr_status_name (TsrStatus status)
{
  switch (status)
    {
    case TSR_OK:         return "ok";
    case TSR_EINVAL:     return "invalid argument";
    case TSR_EIO:        return "input/output error";
    case TSR_EFORMAT:    return "bad format";
    case TSR_ENOMEM:     return "out of memory";
    case TSR_ETOOLARGE:  return "too large";
    case TSR_ECANCELLED: return "cancelled";
    }
  return "unknown status";
}

void
tsr_error_clear (TsrError *err)
{
  if (err == NULL)
    return;
  err->status = TSR_OK;
  err->message[0] = '\0';
}

TsrStatus
tsr_error_set (TsrError *err, TsrStatus status, const char *fmt, ...)
{
  if (err != NULL)
    {
      va_list ap;
      err->status = status;
      va_start (ap, fmt);
      vsnprintf (err->message, sizeof err->message, fmt, ap);
      va_end (ap);
    }
  return status;
}
