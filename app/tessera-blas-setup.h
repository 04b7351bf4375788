/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tessera-blas-setup.h — make OpenBLAS run the kernels this CPU deserves.
 */
#pragma once

/* Call first thing in main(). When OpenBLAS picked generic kernels for a
 * CPU it does not know, re-executes the program with OPENBLAS_CORETYPE set
 * (OpenBLAS reads it only when it loads) and does not return; otherwise
 * returns at once. TESSERA_NO_REEXEC=1 turns this off. */
void tessera_blas_setup (char **argv);
