/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tessera-cli bench vision [--type T[,T…]] [--threads N] [--batch B] [--repeat K]
 *                          [--full] [--hd N]
 *
 * The vision path at full size — CLIP ViT-L/14-336 and the 4096→4096→4096
 * projector — with random weights made in memory for the run (never read
 * from or written to disk). For each weight type (default f32, bf16,
 * q8_0) it times one batch of views through the ViT and the projector on
 * that batch's tokens, and prints ms per view, effective GFLOP/s and
 * where the time goes. The same forward is also run with its products
 * made by tsr_matmul and (f32) by OpenBLAS on its own threads, interleaved
 * with the encoder's own runs, so the ratios come from one run even on a
 * busy machine; "cores" says how busy it was. Totals for a 3840×1600
 * image at HD-9, HD-25 and HD-55 are estimated from those figures; --full
 * runs tsr_vision_encode on such an image instead (minutes). Peak RSS is
 * the kernel's high-water mark, reset before each type and each full run.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>

#include "tessera-cli.h"
#include "tessera-engine.h"
#include "tsr-blas.h"
#include "tsr-cpu.h"
#include "tsr-kernels.h"
#include "tsr-threads.h"
#include "tsr-vit.h"

#define BENCH_W 3840
#define BENCH_H 1600

static const int bench_hds[] = { 9, 25, 55 };

/* llama.cpp's CLIP encoder on the same machine class (issue 6, and
 * performance.md: f16, 2 threads, views one at a time). */
#define LLAMA_CPP_S_LO 3.2
#define LLAMA_CPP_S_HI 3.8

/* CPU seconds this process has used: against the wall clock, it tells
 * whether the run had the cores to itself (another program on a 2-core
 * machine halves it, and the figures with it). */
static double
cpu_s (void)
{
  struct rusage ru;
  getrusage (RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

static double
now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* The kernel's resident-memory high-water mark, in bytes; 0 if unknown. */
static size_t
peak_rss (void)
{
  FILE *f = fopen ("/proc/self/status", "r");
  char line[256];
  size_t kb = 0;
  if (f == NULL)
    return 0;
  while (fgets (line, sizeof line, f))
    if (sscanf (line, "VmHWM: %zu kB", &kb) == 1)
      break;
  fclose (f);
  return kb * 1024;
}

/* Starts the high-water mark again from the current RSS (Linux ≥ 4.0). */
static gboolean
reset_peak_rss (void)
{
  FILE *f = fopen ("/proc/self/clear_refs", "w");
  gboolean ok;
  if (f == NULL)
    return FALSE;
  ok = fputs ("5", f) >= 0;
  return fclose (f) == 0 && ok;
}

static guint8 *
noise_image (int w, int h)
{
  gsize n = (gsize) w * h * 3;
  guint8 *p = g_try_malloc (n);
  guint64 s = 0x9E3779B97F4A7C15u;
  if (p == NULL)
    return NULL;
  for (gsize i = 0; i < n; i++)
    {
      s ^= s << 13;
      s ^= s >> 7;
      s ^= s << 17;
      p[i] = (guint8) (s >> 24);
    }
  return p;
}

static size_t
weight_bytes (const TsrWeights *w)
{
  return (size_t) w->rows * w->row_bytes;
}

static size_t
model_bytes (const TsrVision *v)
{
  size_t n = weight_bytes (&v->vit.patch_embd) + weight_bytes (&v->proj.w0) +
             weight_bytes (&v->proj.w2);
  for (int l = 0; l < v->vit.n_layer; l++)
    {
      const TsrVitLayer *L = &v->vit.layers[l];
      n += weight_bytes (&L->q) + weight_bytes (&L->k) + weight_bytes (&L->v) +
           weight_bytes (&L->out) + weight_bytes (&L->up) + weight_bytes (&L->down);
    }
  return n;
}

typedef struct {
  TsrDType type;
  double   build_s;
  double   ms_view;                  /* ViT, per view */
  TsrVitProfile prof;                /* per view */
  double   matmul_products_ms;       /* per view, the products through tsr_matmul */
  double   blas_products_ms;         /* per view, f32 only: the OpenBLAS yardstick */
  double   proj_ms_token;
  double   pre_ms[G_N_ELEMENTS (bench_hds)];
  double   full_s[G_N_ELEMENTS (bench_hds)];
  size_t   full_rss[G_N_ELEMENTS (bench_hds)];
  double   full_cores[G_N_ELEMENTS (bench_hds)];
  int      full_views[G_N_ELEMENTS (bench_hds)];
  size_t   weights, rss;
  double   cores;                    /* CPU time / wall time while timing the ViT */
} TypeResult;

/* Forwards of n views, the products made each of the ways this type
 * allows, interleaved `repeat` times so that a busy moment on a shared
 * machine hits all of them alike; the best of each, per view. */
static TsrStatus
time_vit (TypeResult *res, TsrVision *v, TsrPool *pool, TsrVitWork *work, int n, int repeat,
          TsrError *err)
{
  static const TsrVitProducts modes[] = {
    TSR_VIT_PRODUCTS_VISION, TSR_VIT_PRODUCTS_MATMUL, TSR_VIT_PRODUCTS_OPENBLAS,
  };
  int n_modes = res->type == TSR_DTYPE_F32 ? 3 : 2;
  double wall0 = now_ms (), cpu0 = cpu_s ();

  res->ms_view = res->matmul_products_ms = res->blas_products_ms = 1e300;
  for (int r = 0; r < repeat; r++)
    for (int k = 0; k < n_modes; k++)
      {
        TsrVitRun run = { NULL, NULL, modes[k] };
        TsrVitProfile p;
        double t0 = now_ms (), t;
        TsrStatus st;

        tsr_vit_work_profile (work, NULL, 1);
        st = tsr_vit_forward (&v->vit, pool, tsr_isa_best (), work, n, &run, err);
        if (st != TSR_OK)
          return st;
        t = (now_ms () - t0) / n;
        tsr_vit_work_profile (work, &p, 1);
        if (modes[k] == TSR_VIT_PRODUCTS_VISION && t < res->ms_view)
          {
            res->ms_view = t;
            res->prof.products_ms = p.products_ms / n;
            res->prof.attention_ms = p.attention_ms / n;
            res->prof.other_ms = p.other_ms / n;
          }
        else if (modes[k] == TSR_VIT_PRODUCTS_MATMUL)
          res->matmul_products_ms = MIN (res->matmul_products_ms, p.products_ms / n);
        else if (modes[k] == TSR_VIT_PRODUCTS_OPENBLAS)
          {
            res->blas_products_ms = MIN (res->blas_products_ms, p.products_ms / n);
            /* OpenBLAS's workers spin for a while after their last call
             * and would take the cores from the next run's threads. */
            g_usleep (500 * 1000);
          }
      }
  if (n_modes < 3)
    res->blas_products_ms = 0;
  res->cores = (cpu_s () - cpu0) / ((now_ms () - wall0) / 1e3);
  return TSR_OK;
}

static TsrStatus
bench_type (TypeResult *res, const TsrVisionInfo *dims, TsrPool *pool, int batch, int repeat,
            gboolean full, int only_hd, const guint8 *rgb, TsrError *err)
{
  TsrVision *v = NULL;
  TsrVitWork *work = NULL;
  TsrHdPlan plan;
  TsrImageSizes sizes;
  TsrImage image = { BENCH_W, BENCH_H, (size_t) 3 * BENCH_W, rgb }, canvas;
  guint8 *canvas_px = NULL;
  float *x = NULL, *tmp = NULL, *y = NULL, *embd = NULL;
  TsrStatus st;
  double t0;
  int64_t rows = (int64_t) batch * TSR_TOKENS_PER_VIEW;

  reset_peak_rss ();
  t0 = now_ms ();
  if ((st = tsr_vision_new_random (dims, res->type, 0x5eed, &v, err)) != TSR_OK)
    return st;
  res->build_s = (now_ms () - t0) / 1e3;
  res->weights = model_bytes (v);

  /* Views: the global view and tiles of the HD-55 canvas of a noise image. */
  if ((st = tsr_hd_plan (BENCH_W, BENCH_H, 55, &plan, err)) != TSR_OK ||
      (st = tsr_image_sizes (&plan, tsr_pool_size (pool), &sizes, err)) != TSR_OK)
    goto out;
  canvas_px = g_try_malloc (sizes.canvas_bytes);
  if (canvas_px == NULL)
    {
      st = TSR_ENOMEM;
      g_snprintf (err->message, sizeof err->message, "no memory for the canvas");
      goto out;
    }
  if ((st = tsr_image_hd_canvas (&image, &plan, tsr_pool_size (pool), canvas_px, err)) != TSR_OK ||
      (st = tsr_vit_work_new (&v->vit, batch, tsr_pool_size (pool), &work, err)) != TSR_OK)
    goto out;
  canvas = (TsrImage) { plan.padded_w, plan.padded_h, (size_t) 3 * plan.padded_w, canvas_px };
  for (int i = 0; i < batch && st == TSR_OK; i++)
    st = i == 0 ? tsr_image_global_view (&canvas, tsr_vit_work_view (work, i), err)
                : tsr_image_tile (&canvas, i - 1, tsr_vit_work_view (work, i), err);
  if (st != TSR_OK)
    goto out;

  printf ("  %-5s ViT on %d view%s, products made %s …\n", tsr_dtype_name (res->type), batch,
          batch == 1 ? "" : "s", res->type == TSR_DTYPE_F32 ? "three ways" : "two ways");
  fflush (stdout);
  if ((st = time_vit (res, v, pool, work, batch, repeat, err)) != TSR_OK)
    goto out;

  /* The projector on a batch's tokens. */
  x = g_try_malloc ((gsize) rows * dims->n_merge * sizeof (float));
  tmp = g_try_malloc ((gsize) rows * dims->n_out * sizeof (float));
  y = g_try_malloc ((gsize) rows * dims->n_out * sizeof (float));
  if (x == NULL || tmp == NULL || y == NULL)
    {
      st = TSR_ENOMEM;
      g_snprintf (err->message, sizeof err->message, "no memory for the projector's rows");
      goto out;
    }
  for (int64_t i = 0; i < rows * dims->n_merge; i++)
    x[i] = (float) ((i * 7919) % 2003) / 1001.0f - 1.0f;
  res->proj_ms_token = 1e300;
  for (int r = 0; r < repeat; r++)
    {
      t0 = now_ms ();
      if ((st = tsr_projector_mlp (&v->proj, pool, tsr_isa_best (), x, rows, tmp, y,
                                   tsr_vit_work_scratch (work), err)) != TSR_OK)
        goto out;
      res->proj_ms_token = MIN (res->proj_ms_token, (now_ms () - t0) / rows);
    }

  /* Preprocessing is cheap: measure it at each budget. */
  for (gsize h = 0; h < G_N_ELEMENTS (bench_hds); h++)
    {
      TsrHdPlan hp;
      TsrImageSizes hs;
      guint8 *cp;
      float *view = tsr_vit_work_view (work, 0);
      if ((st = tsr_hd_plan (BENCH_W, BENCH_H, bench_hds[h], &hp, err)) != TSR_OK ||
          (st = tsr_image_sizes (&hp, tsr_pool_size (pool), &hs, err)) != TSR_OK)
        goto out;
      cp = g_try_malloc (hs.canvas_bytes);
      if (cp == NULL)
        continue;
      t0 = now_ms ();
      if (tsr_image_hd_canvas (&image, &hp, tsr_pool_size (pool), cp, err) == TSR_OK)
        {
          TsrImage c = { hp.padded_w, hp.padded_h, (size_t) 3 * hp.padded_w, cp };
          tsr_image_global_view (&c, view, err);
          for (int k = 0; k < hp.tiles; k++)
            tsr_image_tile (&c, k, view, err);
        }
      res->pre_ms[h] = now_ms () - t0;
      g_free (cp);
    }

  tsr_vit_work_free (work);
  work = NULL;
  g_clear_pointer (&x, g_free);
  g_clear_pointer (&tmp, g_free);
  g_clear_pointer (&y, g_free);
  res->rss = peak_rss ();

  for (gsize h = 0; full && h < G_N_ELEMENTS (bench_hds); h++)
    {
      TsrVisionParams params;
      TsrVisionTimings tm;
      TsrHdPlan hp;
      if (only_hd > 0 && bench_hds[h] != only_hd)
        continue;
      if ((st = tsr_hd_plan (BENCH_W, BENCH_H, bench_hds[h], &hp, err)) != TSR_OK)
        goto out;
      embd = g_try_malloc ((gsize) hp.tokens * dims->n_out * sizeof (float));
      if (embd == NULL)
        {
          st = TSR_ENOMEM;
          g_snprintf (err->message, sizeof err->message, "no memory for the embeddings");
          goto out;
        }
      printf ("  %-5s full encode at HD-%d (%d views) …\n", tsr_dtype_name (res->type),
              bench_hds[h], hp.tiles + 1);
      fflush (stdout);
      tsr_vision_params_init (&params);
      params.hd_num = bench_hds[h];
      params.batch = batch;
      reset_peak_rss ();
      t0 = cpu_s ();
      st = tsr_vision_encode (v, pool, rgb, BENCH_W, BENCH_H, (size_t) 3 * BENCH_W, &params, embd,
                              (size_t) hp.tokens * dims->n_out, &tm, err);
      res->full_cores[h] = (cpu_s () - t0) / (tm.total_ms / 1e3);
      res->full_views[h] = tm.views;
      g_clear_pointer (&embd, g_free);
      if (st != TSR_OK)
        goto out;
      res->full_s[h] = tm.total_ms / 1e3;
      res->full_rss[h] = peak_rss ();
    }

out:
  g_free (x);
  g_free (tmp);
  g_free (y);
  g_free (embd);
  g_free (canvas_px);
  tsr_vit_work_free (work);
  tsr_vision_free (v);
  return st;
}

int
cli_bench_vision (int argc, char **argv)
{
  static const char usage[] = "usage: tessera-cli bench vision [--type T[,T…]] [--threads N] "
                              "[--batch B] [--repeat K] [--full] [--hd N]";
  const char *types_arg = "f32,bf16,q8_0";
  int threads = 0, batch = TSR_VISION_BATCH_DEFAULT, repeat = 1, only_hd = 0;
  gboolean full = FALSE;
  g_auto(GStrv) type_names = NULL;
  g_autofree TypeResult *res = NULL;
  g_autofree guint8 *rgb = NULL;
  TsrVisionInfo dims = { 0 };
  const TsrCpu *cpu = tsr_cpu ();
  TsrPool *pool = NULL;
  TsrError err;
  char blas[256];
  int n_types, rc = CLI_EXIT_OK;
  double flops, attn_flops, proj_flops_token;
  const TypeResult *f32 = NULL;

  for (int i = 1; i < argc; i++)
    {
      const char *a = argv[i], *v;
      if (strcmp (a, "--full") == 0)
        {
          full = TRUE;
          continue;
        }
      if (strcmp (a, "--type") != 0 && strcmp (a, "--threads") != 0 && strcmp (a, "--batch") != 0 &&
          strcmp (a, "--repeat") != 0 && strcmp (a, "--hd") != 0)
        return cli_fail (CLI_EXIT_USAGE, "bench vision: unexpected '%s'; %s", a, usage);
      if (i + 1 >= argc)
        return cli_fail (CLI_EXIT_USAGE, "%s needs a value", a);
      v = argv[++i];
      if (strcmp (a, "--type") == 0)
        types_arg = v;
      else if (strcmp (a, "--threads") == 0 && !cli_parse_int (v, 1, 1024, &threads))
        return cli_fail (CLI_EXIT_USAGE, "--threads takes a whole number from 1 to 1024, not '%s'", v);
      else if (strcmp (a, "--batch") == 0 && !cli_parse_int (v, 1, 64, &batch))
        return cli_fail (CLI_EXIT_USAGE, "--batch takes a whole number from 1 to 64, not '%s'", v);
      else if (strcmp (a, "--repeat") == 0 && !cli_parse_int (v, 1, 100, &repeat))
        return cli_fail (CLI_EXIT_USAGE, "--repeat takes a whole number from 1 to 100, not '%s'", v);
      else if (strcmp (a, "--hd") == 0 && (!cli_parse_int (v, 1, 100, &only_hd) ||
                                           (only_hd != 9 && only_hd != 25 && only_hd != 55)))
        return cli_fail (CLI_EXIT_USAGE, "--hd takes 9, 25 or 55, not '%s'", v);
    }
  type_names = g_strsplit (types_arg, ",", -1);
  n_types = (int) g_strv_length (type_names);
  res = g_new0 (TypeResult, MAX (n_types, 1));
  for (int t = 0; t < n_types; t++)
    if (!tsr_dtype_from_name (type_names[t], &res[t].type))
      return cli_fail (CLI_EXIT_USAGE, "--type: '%s' is not one of f32, f16, bf16, q8_0, q4_0",
                       type_names[t]);
  if (n_types == 0)
    return cli_fail (CLI_EXIT_USAGE, "%s", usage);

  /* CLIP ViT-L/14-336 and InternLM-XComposer2-4KHD's projector. */
  dims.image_size = 336;
  dims.patch_size = 14;
  dims.n_embd = 1024;
  dims.n_layer = 24;
  dims.n_head = 16;
  dims.n_ff = 4096;
  dims.eps = 1e-5f;
  dims.n_out = 4096;
  dims.n_merge = 4 * dims.n_embd;
  {
    TsrVit geom = { 0 };
    geom.image_size = 336;
    geom.patch = 14;
    geom.side = 24;
    geom.n_pos = 577;
    geom.n_embd = 1024;
    geom.n_head = 16;
    geom.head_dim = 64;
    geom.n_ff = 4096;
    geom.n_layer = 24;
    flops = tsr_vit_flops_per_view (&geom);
    attn_flops = 24 * 4.0 * 577.0 * 577.0 * 1024.0;
    proj_flops_token = 2.0 * 4096 * (4096.0 + 4096.0);
  }

  if (tsr_pool_new (threads, &pool, &err) != TSR_OK)
    return cli_fail (CLI_EXIT_RUNTIME, "%s", err.message);
  rgb = noise_image (BENCH_W, BENCH_H);
  if (rgb == NULL)
    {
      tsr_pool_free (pool);
      return cli_fail (CLI_EXIT_RUNTIME, "no memory for a %d×%d image", BENCH_W, BENCH_H);
    }
  tsr_blas_init ();
  tsr_blas_describe (blas, sizeof blas);
  printf ("cpu      %s, %d physical cores; AVX2 %s, FMA %s, F16C %s, AVX-512 %s, AMX %s; kernels %s\n",
          cpu->vendor, cpu->physical_cores, cpu->avx2 ? "yes" : "no", cpu->fma ? "yes" : "no",
          cpu->f16c ? "yes" : "no", cpu->avx512f ? "yes" : "no",
          cpu->amx_tile ? (cpu->amx_usable ? "yes" : "present, not granted") : "no",
          tsr_isa_name (tsr_isa_best ()));
  printf ("blas     %s\n", blas);
  printf ("threads  %d; batches of %d views (products of %d rows); best of %d\n",
          tsr_pool_size (pool), batch, batch * 577, repeat);
  printf ("model    CLIP ViT-L/14-336 (24 blocks, width 1024, 16 heads of 64, MLP 4096) + projector "
          "4096→4096→4096, random weights made in memory\n");
  printf ("work     %.1f GFLOP a view (%.1f in products, %.1f in attention); projector %.1f MFLOP "
          "a token\n\n", flops / 1e9, (flops - attn_flops) / 1e9, attn_flops / 1e9,
          proj_flops_token / 1e6);

  for (int t = 0; t < n_types; t++)
    {
      if (bench_type (&res[t], &dims, pool, batch, repeat, full, only_hd, rgb, &err) != TSR_OK)
        {
          rc = cli_fail (CLI_EXIT_RUNTIME, "%s", err.message);
          goto out;
        }
      if (res[t].type == TSR_DTYPE_F32)
        f32 = &res[t];
    }

  printf ("\nper view (ms), best of %d:\n", repeat);
  printf ("%-5s %9s %7s %8s %8s %9s %9s %6s %9s %9s %9s %11s %9s %6s\n", "type", "weights", "build s",
          "ViT ms", "GFLOP/s", "products", "GFLOP/s", "attn", "other", "vs sgemm", "matmul", "proj ms/tok",
          "peak RSS", "cores");
  for (int t = 0; t < n_types; t++)
    {
      const TypeResult *r = &res[t];
      char ratio[32] = "–";
      if (f32 != NULL && f32->blas_products_ms > 0)
        g_snprintf (ratio, sizeof ratio, "%.2f", f32->blas_products_ms / r->prof.products_ms);
      printf ("%-5s %6.2f GB %7.1f %8.0f %8.1f %9.0f %9.1f %6.0f %9.0f %9s %9.0f %11.3f %6.2f GB %6.2f\n",
              tsr_dtype_name (r->type), r->weights / 1e9, r->build_s, r->ms_view,
              flops / (r->ms_view / 1e3) / 1e9, r->prof.products_ms,
              (flops - attn_flops) / (r->prof.products_ms / 1e3) / 1e9, r->prof.attention_ms,
              r->prof.other_ms, ratio, r->matmul_products_ms, r->proj_ms_token, r->rss / 1e9,
              r->cores);
    }
  printf ("products = the linear layers and patch embedding as the encoder makes them "
          "(tsr_vision_product); matmul = the same through tsr_matmul's panel path;\n"
          "cores = CPU time / wall time while timing (below the thread count: another program "
          "had a core, and the figures are slow)\n");
  if (f32 != NULL && f32->blas_products_ms > 0)
    printf ("vs sgemm = the f32 products on OpenBLAS's own %d threads (%.0f ms, %.1f GFLOP/s) / "
            "this type's products (>1: faster than sgemm)\n", tsr_pool_size (pool),
            f32->blas_products_ms, (flops - attn_flops) / (f32->blas_products_ms / 1e3) / 1e9);

  printf ("\n%d×%d image, total seconds (%s)\n", BENCH_W, BENCH_H,
          full ? "measured: tsr_vision_encode, whole image" :
                 "estimated: preprocessing measured + views × ms/view + tokens × ms/token");
  printf ("%-7s %6s %7s", "budget", "views", "tokens");
  for (int t = 0; t < n_types; t++)
    printf (" %9s", tsr_dtype_name (res[t].type));
  printf ("   llama.cpp CLIP (%.1f–%.1f s a view)\n", LLAMA_CPP_S_LO, LLAMA_CPP_S_HI);
  for (gsize h = 0; h < G_N_ELEMENTS (bench_hds); h++)
    {
      TsrHdPlan hp;
      if (tsr_hd_plan (BENCH_W, BENCH_H, bench_hds[h], &hp, &err) != TSR_OK)
        continue;
      printf ("HD-%-4d %6d %7d", bench_hds[h], hp.tiles + 1, hp.tokens);
      for (int t = 0; t < n_types; t++)
        {
          const TypeResult *r = &res[t];
          double est = (r->pre_ms[h] + (hp.tiles + 1) * r->ms_view + hp.tokens * r->proj_ms_token) / 1e3;
          if (full)
            printf (" %9.1f", r->full_s[h]);
          else
            printf (" %9.1f", est);
        }
      printf ("   %.0f–%.0f s\n", (hp.tiles + 1) * LLAMA_CPP_S_LO, (hp.tiles + 1) * LLAMA_CPP_S_HI);
    }
  if (full)
    for (int t = 0; t < n_types; t++)
      for (gsize h = 0; h < G_N_ELEMENTS (bench_hds); h++)
        if (res[t].full_rss[h] > 0)
          printf ("full     %-5s HD-%-2d %.1f s, %.0f ms a view all in, peak RSS %.2f GB (weights "
                  "%.2f GB), cores %.2f\n", tsr_dtype_name (res[t].type), bench_hds[h],
                  res[t].full_s[h], res[t].full_s[h] * 1e3 / res[t].full_views[h],
                  res[t].full_rss[h] / 1e9, res[t].weights / 1e9, res[t].full_cores[h]);
  {
    TsrHdPlan hp;
    TsrImageSizes hs;
    TsrVit geom = { 0 };
    geom.image_size = 336;
    geom.patch = 14;
    geom.side = 24;
    geom.n_pos = 577;
    geom.n_embd = 1024;
    geom.n_ff = 4096;
    if (tsr_hd_plan (BENCH_W, BENCH_H, 55, &hp, &err) == TSR_OK &&
        tsr_image_sizes (&hp, tsr_pool_size (pool), &hs, &err) == TSR_OK)
      {
        size_t act = tsr_vit_work_bytes (&geom, batch, tsr_pool_size (pool));
        size_t proj = ((size_t) batch * 144 + 2) * (4096 + 2 * 4096) * sizeof (float);
        printf ("memory   HD-55: canvas %.1f MB + ViT batch of %d %.1f MB + projector %.1f MB "
                "= %.1f MB working, output %.1f MB, weights as above\n",
                (hs.canvas_bytes + hs.scratch_bytes) / 1e6, batch, act / 1e6, proj / 1e6,
                (hs.canvas_bytes + hs.scratch_bytes + act + proj) / 1e6,
                (double) hp.tokens * 4096 * 4 / 1e6);
      }
  }

out:
  tsr_pool_free (pool);
  return rc;
}
