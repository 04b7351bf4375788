/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * tessera-sample — draws the sample document Tessera ships and tests with.
 *
 * The page is a fictional quarterly report, 3508×2480 pixels (landscape A4 at
 * 300 dpi). It is deliberately dense: running text, a chart with small tick
 * labels, a table of figures and footnotes set at 10 px. An image like this is
 * why the model tiles its input, so it exercises the HD-N planner with many
 * tiles and gives questions whose answers can only be read at full resolution.
 *
 * Everything on the page is fixed data: the same fonts give the same pixels,
 * so tests may pin answers and checksums to it. Only the regular and bold
 * faces of DejaVu Sans and DejaVu Serif are used because fonts-dejavu-core
 * ships nothing else; an italic would be synthesised differently wherever
 * fonts-dejavu-extra happens to be installed.
 *
 * Usage: tessera-sample OUT.png
 * Exit status: 0 written, 1 could not draw or write, 2 usage error.
 */

/* fstat() and fileno() are POSIX; meson's project-wide definition does not
 * reach this build-machine program. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <cairo.h>
#include <errno.h>
#include <pango/pangocairo.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PROGRAM "tessera-sample"

#define PAGE_W 3508
#define PAGE_H 2480
#define MARGIN 170.0

#define SANS "DejaVu Sans"
#define SERIF "DejaVu Serif"

/* ==== Page state and colours ==== */

typedef struct {
  double r, g, b;
} Rgb;

static const Rgb INK = { 0.11, 0.13, 0.16 };
static const Rgb GREY = { 0.38, 0.41, 0.45 };
static const Rgb RULE = { 0.80, 0.82, 0.85 };
static const Rgb GRID = { 0.88, 0.89, 0.91 };
static const Rgb NAVY = { 0.11, 0.31, 0.50 };
static const Rgb SKY = { 0.60, 0.74, 0.87 };
static const Rgb ORANGE = { 0.88, 0.45, 0.00 };
static const Rgb PANEL = { 0.94, 0.96, 0.98 };
static const Rgb STRIPE = { 0.965, 0.972, 0.98 };
static const Rgb WHITE = { 1.0, 1.0, 1.0 };

typedef struct {
  cairo_t *cr;
  PangoContext *pango;
} Page;

typedef struct {
  const char *family;
  PangoWeight weight;
  double px;
  double spacing; /* line height as a factor of the font's; 0 keeps the font's */
} Font;

static const Font F_KICKER = { SANS, PANGO_WEIGHT_BOLD, 34, 0 };
static const Font F_META = { SANS, PANGO_WEIGHT_NORMAL, 30, 0 };
static const Font F_TITLE = { SERIF, PANGO_WEIGHT_BOLD, 86, 0 };
static const Font F_SUBTITLE = { SANS, PANGO_WEIGHT_NORMAL, 38, 1.3 };
static const Font F_HEADING = { SANS, PANGO_WEIGHT_BOLD, 44, 0 };
static const Font F_BODY = { SERIF, PANGO_WEIGHT_NORMAL, 33, 1.42 };
static const Font F_KPI = { SANS, PANGO_WEIGHT_BOLD, 54, 0 };
static const Font F_KPI_LABEL = { SANS, PANGO_WEIGHT_NORMAL, 26, 1.2 };
static const Font F_CAPTION = { SANS, PANGO_WEIGHT_BOLD, 34, 0 };
static const Font F_AXIS = { SANS, PANGO_WEIGHT_NORMAL, 27, 0 };
static const Font F_VALUE = { SANS, PANGO_WEIGHT_BOLD, 25, 0 };
static const Font F_SMALL = { SANS, PANGO_WEIGHT_NORMAL, 24, 1.25 };
static const Font F_CELL = { SANS, PANGO_WEIGHT_NORMAL, 29, 0 };
static const Font F_CELL_HEAD = { SANS, PANGO_WEIGHT_BOLD, 27, 1.1 };
static const Font F_FOOTNOTE = { SANS, PANGO_WEIGHT_NORMAL, 10, 1.2 };
static const Font F_FOOTER = { SANS, PANGO_WEIGHT_NORMAL, 26, 0 };

/* ==== The report's figures ==== */

/* Monthly totals over all sites; each quarter's sum is the table's column total. */
static const char *const MONTHS[] = {
  "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep",
};
static const int GENERATION_MWH[] = { 512, 688, 1046, 1297, 1521, 1604, 1549, 1508, 1125 };
static const int CONSUMPTION_MWH[] = { 1190, 1085, 1010, 905, 842, 806, 829, 811, 874 };
#define N_MONTHS ((int) (sizeof GENERATION_MWH / sizeof GENERATION_MWH[0]))
_Static_assert (sizeof MONTHS / sizeof MONTHS[0] == N_MONTHS, "one label per month");
_Static_assert (sizeof CONSUMPTION_MWH / sizeof CONSUMPTION_MWH[0] == N_MONTHS,
                "one consumption figure per month");

typedef struct {
  const char *name;
  int capacity_kwp;
  int q1, q2, q3; /* MWh */
} Site;

static const Site SITES[] = {
  { "Millbrook Farm", 2480, 606, 990, 939 },
  { "Quarry Lane", 2950, 252, 1177, 1138 },
  { "Eastfield", 1820, 444, 734, 654 },
  { "Old Dairy Roof", 640, 156, 255, 242 },
  { "Station Car Park", 1360, 332, 543, 514 },
  { "Hollin Barn", 1150, 292, 450, 435 },
  { "Riverside School", 410, 93, 157, 150 },
  { "Community Hall", 290, 71, 116, 110 },
};
#define N_SITES ((int) (sizeof SITES / sizeof SITES[0]))

/* ==== Drawing helpers ==== */

static void
set_rgb (cairo_t *cr, Rgb c)
{
  cairo_set_source_rgb (cr, c.r, c.g, c.b);
}

static void
fill_rect (cairo_t *cr, Rgb c, double x, double y, double w, double h)
{
  set_rgb (cr, c);
  cairo_rectangle (cr, x, y, w, h);
  cairo_fill (cr);
}

static void
hline (cairo_t *cr, Rgb c, double width, double x0, double x1, double y)
{
  set_rgb (cr, c);
  cairo_set_line_width (cr, width);
  cairo_move_to (cr, x0, y);
  cairo_line_to (cr, x1, y);
  cairo_stroke (cr);
}

/* Thousands are grouped because the page is set in English, where a reader
 * (and the model) expects "4,182", not "4182". */
static const char *
group_thousands (char *buf, size_t size, long value)
{
  char digits[32];
  size_t n, i, o = 0;

  snprintf (digits, sizeof digits, "%ld", value < 0 ? -value : value);
  n = strlen (digits);
  if (value < 0 && o + 1 < size)
    buf[o++] = '-';
  for (i = 0; i < n && o + 1 < size; i++) {
    if (i > 0 && (n - i) % 3 == 0 && o + 1 < size)
      buf[o++] = ',';
    if (o + 1 < size)
      buf[o++] = digits[i];
  }
  buf[o] = '\0';
  return buf;
}

/* width <= 0 means one unwrapped paragraph. The context is refreshed on every
 * call so that layouts drawn under a rotation (the axis title) are shaped for
 * the transform in force. */
static PangoLayout *
make_layout (Page *pg, const Font *font, double width, PangoAlignment align, const char *markup)
{
  PangoFontDescription *desc = pango_font_description_new ();
  PangoLayout *layout;

  pango_cairo_update_context (pg->cr, pg->pango);
  layout = pango_layout_new (pg->pango);

  pango_font_description_set_family (desc, font->family);
  pango_font_description_set_weight (desc, font->weight);
  pango_font_description_set_absolute_size (desc, font->px * PANGO_SCALE);
  pango_layout_set_font_description (layout, desc);
  pango_font_description_free (desc);

  if (width > 0) {
    pango_layout_set_width (layout, (int) (width * PANGO_SCALE));
    pango_layout_set_wrap (layout, PANGO_WRAP_WORD);
  }
  pango_layout_set_alignment (layout, align);
  if (font->spacing > 0)
    pango_layout_set_line_spacing (layout, (float) font->spacing);
  pango_layout_set_markup (layout, markup, -1);
  return layout;
}

static void
show_layout (Page *pg, PangoLayout *layout, Rgb c, double x, double y)
{
  cairo_move_to (pg->cr, x, y);
  set_rgb (pg->cr, c);
  pango_cairo_show_layout (pg->cr, layout);
}

/* Returns the height used, so callers can stack blocks down a column. */
static double
draw_text (Page *pg, const Font *font, Rgb c, double x, double y, double width,
           PangoAlignment align, const char *markup)
{
  PangoLayout *layout = make_layout (pg, font, width, align, markup);
  int h;

  show_layout (pg, layout, c, x, y);
  pango_layout_get_pixel_size (layout, NULL, &h);
  g_object_unref (layout);
  return h;
}

/* Centres the capitals on y_mid rather than the logical box, whose descender
 * space would make labels sit visibly high in table rows and beside ticks. */
static void
draw_text_vcentred (Page *pg, const Font *font, Rgb c, double x, double y_mid, double width,
                    PangoAlignment align, const char *markup)
{
  PangoLayout *layout = make_layout (pg, font, width, align, markup);
  const double baseline = (double) pango_layout_get_baseline (layout) / PANGO_SCALE;
  /* DejaVu's cap height is about 0.73 em; centring it makes digits and
   * capitals sit in the middle whatever the line height. */
  const double cap = 0.73 * font->px;

  show_layout (pg, layout, c, x, y_mid + cap / 2.0 - baseline);
  g_object_unref (layout);
}

/* ==== Page sections ==== */

static double
draw_header (Page *pg)
{
  const double right = PAGE_W - MARGIN;
  double y = 118;

  draw_text (pg, &F_KICKER, NAVY, MARGIN, y, -1, PANGO_ALIGN_LEFT,
             "<span letter_spacing='4096'>HELIOTROPE VALLEY SOLAR COOPERATIVE</span>");
  draw_text (pg, &F_META, GREY, MARGIN, y + 2, right - MARGIN, PANGO_ALIGN_RIGHT,
             "Quarterly report · Q3 2026 · Members’ edition · Ref. HVSC/QR/2026-3");
  y += 70;
  hline (pg->cr, NAVY, 5, MARGIN, right, y);

  y += 44;
  y += draw_text (pg, &F_TITLE, INK, MARGIN, y, right - MARGIN, PANGO_ALIGN_LEFT,
                  "Third-quarter results: record output, slower storage roll-out");
  y += 16;
  y += draw_text (pg, &F_SUBTITLE, GREY, MARGIN, y, right - MARGIN, PANGO_ALIGN_LEFT,
                  "Generation, battery storage and member returns for July to September 2026, "
                  "with year-to-date figures for all eight sites");
  y += 40;
  hline (pg->cr, RULE, 3, MARGIN, right, y);
  return y;
}

static double
draw_kpis (Page *pg, double x, double y, double width)
{
  static const struct {
    const char *value;
    const char *label;
  } kpis[] = {
    { "4,182<span size='55%'> MWh</span>", "generated in Q3 2026" },
    { "+11.6\u00A0%", "output compared with Q3 2025" },
    { "1.8\u00A0%", "of potential output curtailed" },
    { "3.4\u00A0%", "proposed member dividend" },
  };
  const int n = (int) (sizeof kpis / sizeof kpis[0]);
  const double gap = 24, h = 172;
  const double w = (width - gap * (n - 1)) / n;
  int i;

  for (i = 0; i < n; i++) {
    double bx = x + i * (w + gap);

    double ty = y + 24;

    fill_rect (pg->cr, PANEL, bx, y, w, h);
    fill_rect (pg->cr, i == 0 ? ORANGE : NAVY, bx, y, 8, h);
    ty += draw_text (pg, &F_KPI, NAVY, bx + 32, ty, w - 48, PANGO_ALIGN_LEFT, kpis[i].value);
    draw_text (pg, &F_KPI_LABEL, GREY, bx + 32, ty + 6, w - 48, PANGO_ALIGN_LEFT, kpis[i].label);
  }
  return h;
}

/* Figures and their units are joined by U+00A0 so that a line break never
 * leaves "%" or "MWh" alone at the start of a line. */
static void
draw_body (Page *pg, double x, double y, double width)
{
  const double para_gap = 30, section_gap = 38;

  y += draw_text (pg, &F_HEADING, NAVY, x, y, width, PANGO_ALIGN_LEFT, "1  Summary");
  y += 28;
  y += draw_kpis (pg, x, y, width);
  y += 36;
  y += draw_text (pg, &F_BODY, INK, x, y, width, PANGO_ALIGN_LEFT,
                  "The cooperative’s eight sites generated <b>4,182\u00A0MWh</b> in the third quarter "
                  "of 2026, 11.6\u00A0% more than in the same quarter last year and the highest "
                  "quarterly output since the first array at Millbrook Farm was connected in "
                  "2014.¹ August alone contributed 1,508\u00A0MWh, helped by a dry second half of "
                  "the month and the first full quarter of the new Quarry Lane array.");
  y += para_gap;
  y += draw_text (pg, &F_BODY, INK, x, y, width, PANGO_ALIGN_LEFT,
                  "Revenue from feed-in tariffs and direct supply contracts reached "
                  "€612,400. After operating costs, insurance and the scheduled loan "
                  "repayment for Quarry Lane, the board proposes a member dividend of "
                  "<b>3.4\u00A0%</b> for the financial year, unchanged from the April forecast.");
  y += section_gap;

  y += draw_text (pg, &F_HEADING, NAVY, x, y, width, PANGO_ALIGN_LEFT, "2  Storage and grid");
  y += 22;
  y += draw_text (pg, &F_BODY, INK, x, y, width, PANGO_ALIGN_LEFT,
                  "Commissioning of the 1.2\u00A0MWh battery at Eastfield was delayed by seven "
                  "weeks because the grid operator asked for an additional protection "
                  "study.² The battery entered trial operation on 18 September; its first "
                  "full month of data will appear in the next report. Curtailment across "
                  "all sites fell to 1.8\u00A0% of potential output (Q3 2025: 3.1\u00A0%).");
  y += section_gap;

  y += draw_text (pg, &F_HEADING, NAVY, x, y, width, PANGO_ALIGN_LEFT, "3  Members");
  y += 22;
  y += draw_text (pg, &F_BODY, INK, x, y, width, PANGO_ALIGN_LEFT,
                  "Membership rose from 1,402 to 1,436 households during the quarter, and "
                  "61 members took part in the open day at Hollin Barn. Share capital "
                  "now stands at €4.87\u00A0million.");
  y += section_gap;

  y += draw_text (pg, &F_HEADING, NAVY, x, y, width, PANGO_ALIGN_LEFT, "4  Outlook");
  y += 22;
  draw_text (pg, &F_BODY, INK, x, y, width, PANGO_ALIGN_LEFT,
             "Autumn output should follow the seasonal pattern in Figure 1. On 14 November "
             "the members’ assembly will vote on a rooftop programme for the two village "
             "schools, which would add about 310\u00A0kWp of capacity in 2027 at an estimated "
             "cost of €395,000, financed from reserves and a new member share issue.");
}

static void
draw_legend_bar (Page *pg, Rgb c, double x, double y_mid, const char *label)
{
  fill_rect (pg->cr, c, x, y_mid - 14, 40, 28);
  draw_text_vcentred (pg, &F_AXIS, INK, x + 54, y_mid, -1, PANGO_ALIGN_LEFT, label);
}

static void
draw_marker (cairo_t *cr, double x, double y)
{
  cairo_arc (cr, x, y, 10, 0, 2 * G_PI);
  set_rgb (cr, WHITE);
  cairo_fill_preserve (cr);
  set_rgb (cr, ORANGE);
  cairo_set_line_width (cr, 5);
  cairo_stroke (cr);
}

static double
draw_chart (Page *pg, double x, double y, double width)
{
  cairo_t *cr = pg->cr;
  const double y_max = 1800, y_step = 300;
  const double plot_x = x + 150, plot_w = width - 150 - 10;
  const double plot_y = y + 150, plot_h = 640;
  const double slot = plot_w / N_MONTHS, bar_w = slot * 0.58;
  const double base = plot_y + plot_h;
  double v, lx;
  char buf[32];
  int i;

  draw_text (pg, &F_CAPTION, INK, x, y, width, PANGO_ALIGN_LEFT,
             "Figure 1. Monthly generation and member consumption, Jan–Sep 2026");

  /* The legend sits above the plot so it can never hide a bar or the line. */
  lx = plot_x;
  draw_legend_bar (pg, SKY, lx, y + 96, "Generation, Q1–Q2");
  lx += 390;
  draw_legend_bar (pg, NAVY, lx, y + 96, "Generation, Q3");
  lx += 340;
  set_rgb (cr, ORANGE);
  cairo_set_line_width (cr, 5);
  cairo_move_to (cr, lx - 6, y + 96);
  cairo_line_to (cr, lx + 46, y + 96);
  cairo_stroke (cr);
  draw_marker (cr, lx + 20, y + 96);
  draw_text_vcentred (pg, &F_AXIS, INK, lx + 60, y + 96, -1, PANGO_ALIGN_LEFT,
                      "Member consumption");

  for (v = 0; v <= y_max; v += y_step) {
    double gy = base - v / y_max * plot_h;

    if (v > 0)
      hline (cr, GRID, 2, plot_x, plot_x + plot_w, gy);
    draw_text_vcentred (pg, &F_AXIS, GREY, x + 40, gy, plot_x - x - 60, PANGO_ALIGN_RIGHT,
                        group_thousands (buf, sizeof buf, (long) v));
  }

  cairo_save (cr);
  cairo_translate (cr, x, base - plot_h / 2);
  cairo_rotate (cr, -G_PI / 2);
  draw_text (pg, &F_AXIS, GREY, -200, 0, 400, PANGO_ALIGN_CENTER, "MWh");
  cairo_restore (cr);

  for (i = 0; i < N_MONTHS; i++) {
    const double bx = plot_x + i * slot + (slot - bar_w) / 2;
    const double bh = GENERATION_MWH[i] / y_max * plot_h;

    fill_rect (cr, i >= 6 ? NAVY : SKY, bx, base - bh, bar_w, bh);
    draw_text (pg, &F_VALUE, INK, bx - 20, base - bh - 38, bar_w + 40, PANGO_ALIGN_CENTER,
               group_thousands (buf, sizeof buf, GENERATION_MWH[i]));
    draw_text_vcentred (pg, &F_AXIS, INK, plot_x + i * slot, base + 34, slot,
                        PANGO_ALIGN_CENTER, MONTHS[i]);
    draw_text_vcentred (pg, &F_VALUE, ORANGE, plot_x + i * slot, base + 80, slot,
                        PANGO_ALIGN_CENTER,
                        group_thousands (buf, sizeof buf, CONSUMPTION_MWH[i]));
  }
  draw_text_vcentred (pg, &F_VALUE, ORANGE, x, base + 80, plot_x - x - 20, PANGO_ALIGN_RIGHT,
                      "Use");
  hline (cr, INK, 3, plot_x, plot_x + plot_w, base);

  set_rgb (cr, ORANGE);
  cairo_set_line_width (cr, 5);
  cairo_set_line_join (cr, CAIRO_LINE_JOIN_ROUND);
  for (i = 0; i < N_MONTHS; i++) {
    const double px = plot_x + (i + 0.5) * slot;
    const double py = base - CONSUMPTION_MWH[i] / y_max * plot_h;

    if (i == 0)
      cairo_move_to (cr, px, py);
    else
      cairo_line_to (cr, px, py);
  }
  cairo_stroke (cr);
  for (i = 0; i < N_MONTHS; i++)
    draw_marker (cr, plot_x + (i + 0.5) * slot, base - CONSUMPTION_MWH[i] / y_max * plot_h);

  draw_text (pg, &F_SMALL, GREY, plot_x, base + 124, plot_w, PANGO_ALIGN_LEFT,
             "Net generation of all eight sites, read from the export meters at midnight on "
             "the first day of each month. Use: electricity bought by members under the "
             "cooperative’s direct supply tariff.");
  return base + 200 - y;
}

static void
draw_table (Page *pg, double x, double y, double width)
{
  static const char *const heads[] = {
    "Site",
    "Capacity\n<span weight='normal'>kWp</span>",
    "Q1 2026\n<span weight='normal'>MWh</span>",
    "Q2 2026\n<span weight='normal'>MWh</span>",
    "Q3 2026\n<span weight='normal'>MWh</span>",
    "Yield³\n<span weight='normal'>kWh/kWp</span>",
  };
  const int n_cols = (int) (sizeof heads / sizeof heads[0]);
  const double first_w = 440, pad = 28;
  const double col_w = (width - first_w) / (n_cols - 1);
  const double head_h = 108, row_h = 62;
  cairo_t *cr = pg->cr;
  long total[5] = { 0, 0, 0, 0, 0 };
  char buf[32];
  double ry;
  int r, c;

  y += draw_text (pg, &F_CAPTION, INK, x, y, width, PANGO_ALIGN_LEFT,
                  "Table 1. Output by site, 2026 year to date");
  y += 24;

  fill_rect (cr, NAVY, x, y, width, head_h);
  for (c = 0; c < n_cols; c++) {
    const double cx = c == 0 ? x : x + first_w + (c - 1) * col_w;
    const double cw = c == 0 ? first_w : col_w;
    PangoLayout *layout = make_layout (pg, &F_CELL_HEAD, cw - 2 * pad,
                                       c == 0 ? PANGO_ALIGN_LEFT : PANGO_ALIGN_RIGHT,
                                       heads[c]);
    int h;

    pango_layout_get_pixel_size (layout, NULL, &h);
    show_layout (pg, layout, WHITE, cx + pad, y + (head_h - h) / 2);
    g_object_unref (layout);
  }

  ry = y + head_h;
  for (r = 0; r <= N_SITES; r++) {
    const int is_total = r == N_SITES;
    const Font *font = is_total ? &F_CELL_HEAD : &F_CELL;
    long cells[5];

    if (is_total) {
      memcpy (cells, total, sizeof cells);
      hline (cr, INK, 3, x, x + width, ry + 1.5);
    } else {
      const Site *s = &SITES[r];

      cells[0] = s->capacity_kwp;
      cells[1] = s->q1;
      cells[2] = s->q2;
      cells[3] = s->q3;
      for (c = 0; c < 4; c++)
        total[c] += cells[c];
      if (r % 2 == 1)
        fill_rect (cr, STRIPE, x, ry, width, row_h);
    }
    /* Yield is worked out here rather than typed in, so the column always
     * agrees with the others to the kWh. */
    cells[4] = (long) ((cells[1] + cells[2] + cells[3]) * 1000.0 / cells[0] + 0.5);

    draw_text_vcentred (pg, font, INK, x + pad, ry + row_h / 2, first_w - 2 * pad,
                        PANGO_ALIGN_LEFT, is_total ? "All sites" : SITES[r].name);
    for (c = 0; c < 5; c++)
      draw_text_vcentred (pg, font, c == 3 ? NAVY : INK, x + first_w + c * col_w + pad,
                          ry + row_h / 2, col_w - 2 * pad, PANGO_ALIGN_RIGHT,
                          group_thousands (buf, sizeof buf, cells[c]));
    ry += row_h;
  }
  hline (cr, INK, 3, x, x + width, ry);
}

static void
draw_footer (Page *pg)
{
  const double right = PAGE_W - MARGIN;
  double y = 2282;

  hline (pg->cr, RULE, 2, MARGIN, right, y);
  y += 18;
  /* The notes are set at 10 px on purpose: reading them needs the image at
   * full resolution, which is the case Tessera exists for. */
  draw_text (pg, &F_FOOTNOTE, INK, MARGIN, y, 2300, PANGO_ALIGN_LEFT,
             "¹ Output figures are net of inverter losses and station consumption, as metered "
             "at the grid connection point. Q3 2025 has been restated to include the Old Dairy "
             "Roof array, which was previously reported separately (restated Q3 2025 output: "
             "3,747\u00A0MWh).\n"
             "² The protection study concerned the fault-current contribution of the battery "
             "inverter at the Eastfield substation. Its cost of €8,900 is carried by the project "
             "budget and does not affect the dividend proposal.\n"
             "³ Specific yield is Q1 + Q2 + Q3 output divided by installed capacity. Quarry Lane "
             "was connected on 9 March 2026, so its yield covers less than seven months.\n"
             "Prepared by the board on 2 October 2026. All figures are provisional and "
             "unaudited; the audited annual accounts will be published in April 2027. "
             "Questions to the treasurer: accounts@heliotrope-valley.example");

  draw_text (pg, &F_FOOTER, GREY, MARGIN, 2376, -1, PANGO_ALIGN_LEFT,
             "Heliotrope Valley Solar Cooperative eG · Quarterly report Q3 2026");
  draw_text (pg, &F_FOOTER, GREY, MARGIN, 2376, right - MARGIN, PANGO_ALIGN_RIGHT,
             "Page 3 of 12");
}

static void
draw_page (Page *pg)
{
  const double gutter = 120;
  const double left_w = 1440;
  const double right_x = MARGIN + left_w + gutter;
  const double right_w = PAGE_W - MARGIN - right_x;
  double top, chart_h;

  fill_rect (pg->cr, WHITE, 0, 0, PAGE_W, PAGE_H);
  top = draw_header (pg) + 56;

  draw_body (pg, MARGIN, top, left_w);

  /* A hairline between the columns, as print layouts do, so the eye keeps the
   * running text apart from the figures. */
  set_rgb (pg->cr, RULE);
  cairo_set_line_width (pg->cr, 2);
  cairo_move_to (pg->cr, MARGIN + left_w + gutter / 2, top);
  cairo_line_to (pg->cr, MARGIN + left_w + gutter / 2, 2240);
  cairo_stroke (pg->cr);

  chart_h = draw_chart (pg, right_x, top, right_w);
  draw_table (pg, right_x, top + chart_h + 40, right_w);
  draw_footer (pg);
}

/* ==== Output ==== */

typedef struct {
  FILE *fp;
  int err;
} Sink;

static cairo_status_t
write_chunk (void *closure, const unsigned char *data, unsigned int length)
{
  Sink *sink = closure;

  if (fwrite (data, 1, length, sink->fp) != length) {
    sink->err = errno ? errno : EIO;
    return CAIRO_STATUS_WRITE_ERROR;
  }
  return CAIRO_STATUS_SUCCESS;
}

/* Writes through our own FILE so that a failure can name the reason
 * (cairo_surface_write_to_png only says "error while writing"), and removes a
 * half-written file so a build never keeps a truncated sample. Only a regular
 * file is removed: run as root with OUT=/dev/full, a plain remove() would
 * delete the device node. */
static int
write_png (cairo_surface_t *surface, const char *path)
{
  Sink sink = { NULL, 0 };
  cairo_status_t status;
  struct stat st;
  int is_regular;

  sink.fp = fopen (path, "wb");
  if (sink.fp == NULL) {
    fprintf (stderr, PROGRAM ": error: cannot open '%s' for writing: %s\n", path,
             strerror (errno));
    return 0;
  }
  is_regular = fstat (fileno (sink.fp), &st) == 0 && S_ISREG (st.st_mode);

  errno = 0;
  status = cairo_surface_write_to_png_stream (surface, write_chunk, &sink);
  if (status == CAIRO_STATUS_SUCCESS && fflush (sink.fp) != 0) {
    sink.err = errno;
    status = CAIRO_STATUS_WRITE_ERROR;
  }
  if (fclose (sink.fp) != 0 && status == CAIRO_STATUS_SUCCESS) {
    sink.err = errno;
    status = CAIRO_STATUS_WRITE_ERROR;
  }
  if (status != CAIRO_STATUS_SUCCESS) {
    fprintf (stderr, PROGRAM ": error: cannot write '%s': %s\n", path,
             sink.err ? strerror (sink.err) : cairo_status_to_string (status));
    if (is_regular)
      remove (path);
    return 0;
  }
  return 1;
}

int
main (int argc, char **argv)
{
  cairo_surface_t *surface;
  cairo_font_options_t *options;
  cairo_status_t status;
  Page pg;
  int ok;

  if (argc != 2 || argv[1][0] == '\0') {
    fprintf (stderr, "Usage: " PROGRAM " OUT.png\n"
                     "Draws Tessera's %d×%d sample document and writes it as a PNG.\n",
             PAGE_W, PAGE_H);
    return 2;
  }

  surface = cairo_image_surface_create (CAIRO_FORMAT_RGB24, PAGE_W, PAGE_H);
  pg.cr = cairo_create (surface);
  pg.pango = pango_cairo_create_context (pg.cr);

  /* Unhinted metrics keep line breaks identical across FreeType versions;
   * slight hinting keeps 10 px text crisp without moving glyphs sideways. */
  options = cairo_font_options_create ();
  cairo_font_options_set_antialias (options, CAIRO_ANTIALIAS_GRAY);
  cairo_font_options_set_hint_style (options, CAIRO_HINT_STYLE_SLIGHT);
  cairo_font_options_set_hint_metrics (options, CAIRO_HINT_METRICS_OFF);
  pango_cairo_context_set_font_options (pg.pango, options);
  cairo_font_options_destroy (options);
  pango_context_set_language (pg.pango, pango_language_from_string ("en"));

  draw_page (&pg);

  status = cairo_status (pg.cr);
  g_object_unref (pg.pango);
  cairo_destroy (pg.cr);
  if (status != CAIRO_STATUS_SUCCESS) {
    fprintf (stderr, PROGRAM ": error: cannot draw the page: %s\n",
             cairo_status_to_string (status));
    cairo_surface_destroy (surface);
    return 1;
  }

  ok = write_png (surface, argv[1]);
  cairo_surface_destroy (surface);
  return ok ? 0 : 1;
}
