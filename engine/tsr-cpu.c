/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tsr-cpu.c — cpuid, the OS's saved-state support (xgetbv), Linux's AMX
 * permission request, and the physical core count.
 */
#include "tsr-cpu.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <sys/syscall.h>
#define TSR_X86 1
#endif

static TsrCpu cpu;
static pthread_once_t cpu_once = PTHREAD_ONCE_INIT;

#ifdef TSR_X86
static unsigned long long
xgetbv0 (void)
{
  unsigned int lo, hi;
  __asm__ volatile ("xgetbv" : "=a" (lo), "=d" (hi) : "c" (0));
  return ((unsigned long long) hi << 32) | lo;
}

/* Linux keeps AMX tile data off until a process asks (arch_prctl,
 * ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA = 18); without it the first
 * tile instruction kills the process. */
static int
request_amx (void)
{
#ifdef SYS_arch_prctl
  const long ARCH_REQ_XCOMP_PERM = 0x1023;
  const long XFEATURE_XTILEDATA = 18;
  return syscall (SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
#else
  return 0;
#endif
}
#endif

/* Physical cores: logical CPUs whose (package, core) pair is new. Counting
 * SMT siblings as cores would have two threads fight over one FPU. */
static int
count_physical_cores (int logical)
{
  int seen_pkg[256], seen_core[256], n = 0;
  for (int i = 0; i < logical && i < 256; i++)
    {
      char path[128];
      int pkg = -1, core = -1, dup = 0;
      FILE *f;
      snprintf (path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/physical_package_id", i);
      if ((f = fopen (path, "r")) != NULL)
        {
          if (fscanf (f, "%d", &pkg) != 1)
            pkg = -1;
          fclose (f);
        }
      snprintf (path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/core_id", i);
      if ((f = fopen (path, "r")) != NULL)
        {
          if (fscanf (f, "%d", &core) != 1)
            core = -1;
          fclose (f);
        }
      if (pkg < 0 || core < 0)
        return logical;
      for (int j = 0; j < n; j++)
        if (seen_pkg[j] == pkg && seen_core[j] == core)
          dup = 1;
      if (!dup)
        {
          seen_pkg[n] = pkg;
          seen_core[n] = core;
          n++;
        }
    }
  return n > 0 ? n : logical;
}

static void
detect (void)
{
  long online = sysconf (_SC_NPROCESSORS_ONLN);
  cpu.logical_cpus = online > 0 ? (int) online : 1;
  cpu.physical_cores = count_physical_cores (cpu.logical_cpus);
  strcpy (cpu.vendor, "unknown");

#ifdef TSR_X86
  {
    unsigned int a, b, c, d, max_leaf;
    unsigned long long xcr0 = 0;
    int os_avx = 0, os_avx512 = 0, os_amx = 0;

    if (!__get_cpuid (0, &max_leaf, &b, &c, &d))
      return;
    memcpy (cpu.vendor + 0, &b, 4);
    memcpy (cpu.vendor + 4, &d, 4);
    memcpy (cpu.vendor + 8, &c, 4);
    cpu.vendor[12] = '\0';

    __cpuid (1, a, b, c, d);
    cpu.sse3 = (c >> 0) & 1;
    cpu.fma = (c >> 12) & 1;
    cpu.f16c = (c >> 29) & 1;
    if ((c >> 27) & 1)   /* OSXSAVE: xgetbv is allowed */
      {
        xcr0 = xgetbv0 ();
        os_avx = (xcr0 & 0x6) == 0x6;
        os_avx512 = os_avx && (xcr0 & 0xe0) == 0xe0;
        os_amx = (xcr0 & 0x60000) == 0x60000;
      }
    cpu.avx = os_avx && ((c >> 28) & 1);
    cpu.fma &= cpu.avx;
    cpu.f16c &= cpu.avx;

    if (max_leaf >= 7)
      {
        __cpuid_count (7, 0, a, b, c, d);
        cpu.avx2 = cpu.avx && ((b >> 5) & 1);
        cpu.avx512f = os_avx512 && ((b >> 16) & 1);
        cpu.avx512bw = cpu.avx512f && ((b >> 30) & 1);
        cpu.avx512vl = cpu.avx512f && ((b >> 31) & 1);
        cpu.avx512_vnni = cpu.avx512f && ((c >> 11) & 1);
        cpu.amx_bf16 = os_amx && ((d >> 22) & 1);
        cpu.amx_tile = os_amx && ((d >> 24) & 1);
        cpu.amx_int8 = os_amx && ((d >> 25) & 1);
        __cpuid_count (7, 1, a, b, c, d);
        cpu.avx512_bf16 = cpu.avx512f && ((a >> 5) & 1);
      }
    if (cpu.amx_tile)
      cpu.amx_usable = request_amx ();
  }
#endif
}

const TsrCpu *
tsr_cpu (void)
{
  pthread_once (&cpu_once, detect);
  return &cpu;
}
