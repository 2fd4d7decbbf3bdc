/**
 * Line charts as standalone SVG text, for the bench's committed plots: one or more panels side by
 * side, linear or logarithmic axes with round tick values, and one legend under them. No
 * dependencies, nothing to render: the SVG is written as it is.
 */

export interface Point {
  x: number;
  y: number;
}

export interface Series {
  name: string;
  color: string;
  /** SVG stroke-dasharray, e.g. '6 4'; solid when absent. */
  dash?: string;
  points: Point[];
  /** Draw a dot on every point. Default true. */
  markers?: boolean;
  /** Leave the series out of the legend (e.g. a second panel's copy). */
  hideInLegend?: boolean;
}

export interface Axis {
  label: string;
  log?: boolean;
  /** Range; by default the data's, widened to round ticks. */
  min?: number;
  max?: number;
}

export interface Panel {
  title: string;
  x: Axis;
  y: Axis;
  series: Series[];
  /** Grey dashed lines, e.g. y = x, or a threshold. */
  guides?: Array<{ label: string; points: Point[] }>;
}

export interface ChartOptions {
  title: string;
  /** A second line under the title (conditions of the measurement). */
  subtitle?: string;
  panels: Panel[];
  panelWidth?: number;
  panelHeight?: number;
}

const FONT = 'font-family="DejaVu Sans, Helvetica, Arial, sans-serif"';
const MARGIN = { left: 64, right: 20, top: 34, bottom: 46 };

export function lineChartSvg(options: ChartOptions): string {
  const panelWidth = options.panelWidth ?? 480;
  const panelHeight = options.panelHeight ?? 340;
  const header = options.subtitle ? 56 : 38;
  const legendEntries = dedupeLegend(options.panels.flatMap((panel) => panel.series.filter((s) => !s.hideInLegend)));
  // Columns as wide as the longest entry (about 6.8 px per character at 12 px, plus the line sample).
  const legendColumnWidth = Math.max(...legendEntries.map((s) => s.name.length * 6.8 + 60), 120);
  const legendColumns = Math.max(1, Math.floor((panelWidth * options.panels.length - 24) / legendColumnWidth));
  const legendRows = Math.ceil(legendEntries.length / legendColumns);
  const width = panelWidth * options.panels.length;
  const height = header + panelHeight + 16 + legendRows * 20 + 8;

  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold" ${FONT}>${escape(options.title)}</text>`,
  ];
  if (options.subtitle) {
    parts.push(`<text x="${width / 2}" y="44" text-anchor="middle" font-size="12" fill="#444" ${FONT}>${escape(options.subtitle)}</text>`);
  }
  options.panels.forEach((panel, index) => {
    parts.push(`<g transform="translate(${index * panelWidth},${header})">${panelSvg(panel, panelWidth, panelHeight, `plot${index}`)}</g>`);
  });
  const legendTop = header + panelHeight + 16;
  const columnWidth = legendColumnWidth;
  legendEntries.forEach((series, index) => {
    const x = (index % legendColumns) * columnWidth + 24;
    const y = legendTop + Math.floor(index / legendColumns) * 20;
    parts.push(
      `<line x1="${x}" y1="${y}" x2="${x + 30}" y2="${y}" stroke="${series.color}" stroke-width="2.5"${dashAttr(series.dash)}/>`,
      `<text x="${x + 38}" y="${y + 4}" font-size="12" ${FONT}>${escape(series.name)}</text>`,
    );
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

function panelSvg(panel: Panel, width: number, height: number, clipId: string): string {
  const plotWidth = width - MARGIN.left - MARGIN.right;
  const plotHeight = height - MARGIN.top - MARGIN.bottom;
  const allPoints = [...panel.series.flatMap((s) => s.points), ...(panel.guides ?? []).flatMap((g) => g.points)].filter(
    (p) => Number.isFinite(p.x) && Number.isFinite(p.y),
  );
  const xScale = scale(panel.x, allPoints.map((p) => p.x), plotWidth, false);
  const yScale = scale(panel.y, allPoints.map((p) => p.y), plotHeight, true);
  const px = (x: number) => MARGIN.left + xScale.map(x);
  const py = (y: number) => MARGIN.top + yScale.map(y);
  const parts: string[] = [
    `<text x="${width / 2}" y="18" text-anchor="middle" font-size="13" font-weight="bold" ${FONT}>${escape(panel.title)}</text>`,
    `<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotWidth}" height="${plotHeight}" fill="#fafafa" stroke="#999"/>`,
  ];
  for (const tick of xScale.ticks) {
    const x = px(tick.value);
    parts.push(
      `<line x1="${x}" y1="${MARGIN.top}" x2="${x}" y2="${MARGIN.top + plotHeight}" stroke="#e3e3e3"/>`,
      `<line x1="${x}" y1="${MARGIN.top + plotHeight}" x2="${x}" y2="${MARGIN.top + plotHeight + 5}" stroke="#666"/>`,
    );
    if (tick.label) parts.push(`<text x="${x}" y="${MARGIN.top + plotHeight + 18}" text-anchor="middle" font-size="11" ${FONT}>${tick.label}</text>`);
  }
  for (const tick of yScale.ticks) {
    const y = py(tick.value);
    parts.push(
      `<line x1="${MARGIN.left}" y1="${y}" x2="${MARGIN.left + plotWidth}" y2="${y}" stroke="#e3e3e3"/>`,
      `<line x1="${MARGIN.left - 5}" y1="${y}" x2="${MARGIN.left}" y2="${y}" stroke="#666"/>`,
    );
    if (tick.label) parts.push(`<text x="${MARGIN.left - 8}" y="${y + 4}" text-anchor="end" font-size="11" ${FONT}>${tick.label}</text>`);
  }
  parts.push(
    `<text x="${MARGIN.left + plotWidth / 2}" y="${height - 8}" text-anchor="middle" font-size="12" ${FONT}>${escape(panel.x.label)}</text>`,
    `<text transform="translate(16,${MARGIN.top + plotHeight / 2}) rotate(-90)" text-anchor="middle" font-size="12" ${FONT}>${escape(panel.y.label)}</text>`,
  );
  parts.push(`<clipPath id="${clipId}"><rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotWidth}" height="${plotHeight}"/></clipPath>`);
  const inside: string[] = [];
  for (const guide of panel.guides ?? []) {
    const points = usable(guide.points, panel);
    if (points.length < 2) continue;
    inside.push(`<polyline points="${points.map((p) => `${px(p.x).toFixed(1)},${py(p.y).toFixed(1)}`).join(' ')}" fill="none" stroke="#888" stroke-width="1.2" stroke-dasharray="3 4"/>`);
    const last = points[points.length - 1]!;
    inside.push(`<text x="${(px(last.x) - 4).toFixed(1)}" y="${(py(last.y) - 6).toFixed(1)}" text-anchor="end" font-size="11" fill="#666" ${FONT}>${escape(guide.label)}</text>`);
  }
  for (const series of panel.series) {
    const points = usable(series.points, panel);
    if (points.length === 0) continue;
    const coordinates = points.map((p) => `${px(p.x).toFixed(1)},${py(p.y).toFixed(1)}`);
    if (points.length > 1) {
      inside.push(`<polyline points="${coordinates.join(' ')}" fill="none" stroke="${series.color}" stroke-width="2"${dashAttr(series.dash)} stroke-linejoin="round"/>`);
    }
    if (series.markers ?? true) {
      for (const c of coordinates) {
        const [x, y] = c.split(',');
        inside.push(`<circle cx="${x}" cy="${y}" r="3" fill="${series.color}"/>`);
      }
    }
  }
  parts.push(`<g clip-path="url(#${clipId})">${inside.join('\n')}</g>`);
  return parts.join('\n');
}

/** Finite points (positive ones on a log axis). */
function usable(points: Point[], panel: Panel): Point[] {
  return points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y) && (!panel.x.log || p.x > 0) && (!panel.y.log || p.y > 0));
}

interface Scale {
  map(value: number): number;
  ticks: Array<{ value: number; label: string }>;
}

function scale(axis: Axis, values: number[], length: number, inverted: boolean): Scale {
  const positive = axis.log ? values.filter((v) => v > 0) : values;
  let min = axis.min ?? (positive.length ? Math.min(...positive) : 1);
  let max = axis.max ?? (positive.length ? Math.max(...positive) : 10);
  if (axis.log) {
    min = axis.min ?? 10 ** Math.floor(Math.log10(min));
    max = axis.max ?? 10 ** Math.ceil(Math.log10(max));
    if (max <= min) max = min * 10;
    const lo = Math.log10(min);
    const hi = Math.log10(max);
    const ticks: Array<{ value: number; label: string }> = [];
    const decades = hi - lo;
    for (let exponent = Math.floor(lo); exponent <= Math.ceil(hi); exponent += 1) {
      for (const mantissa of [1, 2, 5]) {
        const value = mantissa * 10 ** exponent;
        if (value < min * 0.999 || value > max * 1.001) continue;
        // Label 1-2-5 while there is room, only the decades when the axis spans many.
        ticks.push({ value, label: decades <= 4 || mantissa === 1 ? formatNumber(value) : '' });
      }
    }
    return {
      map: (value) => {
        const t = (Math.log10(value) - lo) / (hi - lo);
        return inverted ? length * (1 - t) : length * t;
      },
      ticks,
    };
  }
  if (axis.min === undefined) min = Math.min(0, min);
  if (max <= min) max = min + 1;
  const step = niceStep((max - min) / 6);
  min = axis.min ?? Math.floor(min / step) * step;
  max = axis.max ?? Math.ceil(max / step) * step;
  const ticks: Array<{ value: number; label: string }> = [];
  for (let value = Math.ceil(min / step) * step; value <= max + step / 1000; value += step) {
    ticks.push({ value, label: formatNumber(Number(value.toPrecision(10))) });
  }
  return {
    map: (value) => {
      const t = (value - min) / (max - min);
      return inverted ? length * (1 - t) : length * t;
    },
    ticks,
  };
}

function niceStep(rough: number): number {
  const power = 10 ** Math.floor(Math.log10(rough));
  const fraction = rough / power;
  return (fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10) * power;
}

export function formatNumber(value: number): string {
  if (value >= 1000 && value % 1000 === 0) return `${value / 1000}k`;
  if (Math.abs(value) >= 1 || value === 0) return String(Number(value.toFixed(2)));
  return String(Number(value.toPrecision(2)));
}

function dedupeLegend(series: Series[]): Series[] {
  const seen = new Set<string>();
  return series.filter((s) => {
    const key = `${s.name}|${s.color}|${s.dash ?? ''}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

const dashAttr = (dash: string | undefined) => (dash ? ` stroke-dasharray="${dash}"` : '');

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
