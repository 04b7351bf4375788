/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tessera-blas-setup.h"
#include "tessera-engine.h"

void
tessera_blas_setup (char **argv)
{
  const char *core;

  /* Set on the way into the re-executed program, so it never loops. */
  if (getenv ("TESSERA_NO_REEXEC") != NULL)
    return;
  core = tsr_blas_better_coretype ();
  if (core == NULL)
    return;
  setenv ("OPENBLAS_CORETYPE", core, 1);
  setenv ("TESSERA_NO_REEXEC", "1", 1);
  if (getenv ("TESSERA_DEBUG") != NULL)
    fprintf (stderr, "tessera: OpenBLAS chose generic kernels; restarting with OPENBLAS_CORETYPE=%s\n",
             core);
  execv ("/proc/self/exe", argv);
  /* Still here: run on, slower, and say why. */
  fprintf (stderr, "tessera: warning: could not restart with OPENBLAS_CORETYPE=%s (%s); matrix "
           "products will be slow. Set OPENBLAS_CORETYPE=%s yourself.\n", core, strerror (errno), core);
}
