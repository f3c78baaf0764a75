"""Interactive explorers over cached results, in three renderers over one core.

Two explorers, both built from what the notebooks already computed (attack records,
attack results, UMAP panels); they never train or attack anything:

- :class:`SweepExplorer` (``sweep(records, ...)``): pick the attack, the model or loss,
  and a point of the sweep (eps, or tau in the tau sweep); it shows robust accuracy
  along the sweep, the histogram of the second-largest softmax ``p2`` before and after
  the attack, and the share of successful attacks that land on the clean runner-up.
- :class:`SampleExplorer` (``samples(result, panels, ...)``): the 2-D (UMAP) view of a
  model's clean and adversarial points. Clicking a point shows the clean image, the
  adversarial image, the perturbation (rescaled), and the softmax bars before and after,
  with the clean ``p2``, the clean runner-up and the class the attack landed on.

The numbers of a selection come from ``explore_core`` (which calls ``stats``); each
explorer draws them three ways:

- :meth:`~SweepExplorer.static_figure`: a matplotlib figure of the current selection;
- :meth:`~SweepExplorer.widget`: the live view (ipywidgets controls, plotly figures);
- :meth:`~SweepExplorer.html`: a kernel-free interactive figure, every selection
  precomputed (the sweep explorer: every attack × model × eps; the sample explorer: a
  fixed set of samples per model), for the static book. It expects plotly.js loaded
  once by the page (``window.Plotly``) and fetches nothing; until plotly is there it
  shows a picture.

Each explorer also has a plain Python interface (``set(...)``, ``select(i)``,
``summary()``, ``sample_info(i)``), so a teacher can script it and tests can drive it.

Displayed in a notebook, an explorer shows the live widget when a front end is
attached, and otherwise (a notebook executed by nbclient or papermill, or plain Python)
leaves one output holding the kernel-free HTML and a PNG of the current view, so a
static site shows the interactive figure and anything else the picture; see
:func:`headless`.
"""

from __future__ import annotations

import base64
import io
import json
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .explore_core import P2_BINS, SampleCore, SampleView, SweepCore, SweepView, fmt, plain

__all__ = ["headless", "SweepExplorer", "SampleExplorer", "sweep", "samples", "P2_BINS"]

_DASH = {"-": "solid", "--": "dash", ":": "dot", "-.": "dashdot"}
_SYMBOL = {"o": "circle", "s": "square", "^": "triangle-up", "D": "diamond",
           "v": "triangle-down", "P": "cross"}
_SEP = "\u241f"  # joins a state's values into its key in the kernel-free figure


def headless() -> bool:
    """True when no front end can show widgets, so explorers leave static output.

    That is the case outside an IPython kernel (plain Python, a terminal), and in a
    kernel whose current request comes from a runner rather than a person: nbclient,
    papermill and nbconvert execute with ``allow_stdin=False``, which every
    interactive front end (JupyterLab, Notebook, VS Code) sets to True. The variable
    ``DRSL_HEADLESS`` overrides this: ``1`` for static output, ``0`` for widgets.
    """
    forced = os.environ.get("DRSL_HEADLESS", "")
    if forced:
        return forced != "0"
    try:
        from IPython import get_ipython
    except ImportError:
        return True
    kernel = getattr(get_ipython(), "kernel", None)
    if kernel is None or not hasattr(kernel, "get_parent"):
        return True
    request = kernel.get_parent("shell") or {}
    return not request.get("content", {}).get("allow_stdin", True)


def _num(value: Any, digits: int = 4) -> float | None:
    """A JSON-safe rounded number (None for NaN, which JSON lacks)."""
    value = float(value)
    return round(value, digits) if np.isfinite(value) else None


def _nums(values: Any, digits: int = 4) -> list[float | None]:
    return [_num(v, digits) for v in values]


def _png(fig: Any, dpi: int = 90) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _json_script(spec: Any) -> str:
    # "</" cannot end the script element early once escaped.
    text = json.dumps(spec, separators=(",", ":"), allow_nan=False)
    return text.replace("</", "<\\/")


# The kernel-free figures' shared JavaScript: wait for plotly, then swap to the picked
# state. Written for the plain browser (no modules, no network).
_JS_COMMON = """
function drslWhenPlotly(fn){if(window.Plotly){fn();return;}var n=0,t=setInterval(function(){
if(window.Plotly){clearInterval(t);fn();}else if(++n>300){clearInterval(t);}},100);}
"""

_SWEEP_JS = """(function(){
var root=document.currentScript.parentElement;
var spec=JSON.parse(root.querySelector('script.drsl-data').textContent);
var plot=root.querySelector('.drsl-plot'),cap=root.querySelector('.drsl-caption');
var img=root.querySelector('.drsl-fallback'),ctls=root.querySelector('.drsl-controls');
var order=spec.order,last=order.length-1,S=spec.sep,chosen=spec.start.split(S);
var parts=spec.keys.map(function(k){return k.split(S);});
var els=order.map(function(c){return root.querySelector('[data-col="'+c+'"]');});
var shown=root.querySelector('.drsl-value'),live=false;
function opts(i){var out=[];parts.forEach(function(p){for(var j=0;j<i;j++){
if(p[j]!==chosen[j])return;}if(out.indexOf(p[i])<0)out.push(p[i]);});return out;}
function nearest(o,v){var x=parseFloat(v),b=o[0];o.forEach(function(w){
if(Math.abs(parseFloat(w)-x)<Math.abs(parseFloat(b)-x))b=w;});return b;}
function sync(){for(var i=0;i<order.length;i++){var o=opts(i),el=els[i];
if(o.indexOf(chosen[i])<0)chosen[i]=(i===last)?nearest(o,chosen[i]):o[0];
if(el.tagName==='SELECT'){el.innerHTML='';o.forEach(function(v){
var e=document.createElement('option');e.value=v;e.textContent=v;el.appendChild(e);});
el.value=chosen[i];}else{el._opts=o;el.max=o.length-1;el.value=o.indexOf(chosen[i]);
shown.textContent=chosen[i];}}}
function draw(){var key=chosen.join(S),s=spec.states[key];root.setAttribute('data-state',
key.split(S).join(' | '));cap.innerHTML=s.c;if(live){
Plotly.react(plot,s.d,spec.layout,{displaylogo:false,responsive:true});}}
els.forEach(function(el,i){el.addEventListener(el.tagName==='SELECT'?'change':'input',
function(){chosen[i]=el.tagName==='SELECT'?el.value:el._opts[+el.value];sync();draw();});});
sync();draw();
drslWhenPlotly(function(){live=true;plot.style.display='';ctls.style.display='';
if(img)img.style.display='none';draw();});
})();"""

_SAMPLE_JS = """(function(){
var root=document.currentScript.parentElement;
var spec=JSON.parse(root.querySelector('script.drsl-data').textContent);
var map=root.querySelector('.drsl-map'),det=root.querySelector('.drsl-detail');
var cap=root.querySelector('.drsl-caption'),img=root.querySelector('.drsl-fallback');
var ctls=root.querySelector('.drsl-controls'),msel=root.querySelector('[data-col="model"]');
var range=root.querySelector('[data-col="sample"]'),shown=root.querySelector('.drsl-value');
var next=root.querySelector('.drsl-next'),model=spec.start[0],pos=0,live=false,drawn=false;
spec.models.forEach(function(m){var e=document.createElement('option');e.value=m;
e.textContent=m;msel.appendChild(e);});
function M(){return spec.per[model];}
function setSample(i){pos=Math.max(0,M().samples.indexOf(i));}
function draw(){var m=M(),id=m.samples[pos],s=m.states[id];msel.value=model;
range.max=m.samples.length-1;range.value=pos;shown.textContent=id;cap.innerHTML=s.c;
root.setAttribute('data-state',model+' | '+id);if(!live)return;
Plotly.react(map,m.scatter.concat([s.sel]),spec.mapLayout,{displaylogo:false});
if(!drawn){drawn=true;map.on('plotly_click',function(ev){var p=ev.points[0];
var cd=p&&p.customdata;var i=Array.isArray(cd)?cd[0]:cd;
if(M().samples.indexOf(i)>=0){setSample(i);draw();}});}
Plotly.react(det,s.d,spec.detailLayout,{displaylogo:false});}
msel.addEventListener('change',function(){model=msel.value;pos=0;draw();});
range.addEventListener('input',function(){pos=+range.value;draw();});
next.addEventListener('click',function(){var m=M(),n=m.samples.length;
for(var k=1;k<=n;k++){var j=(pos+k)%n;if(m.states[m.samples[j]].off){pos=j;break;}}draw();});
setSample(spec.start[1]);draw();
drslWhenPlotly(function(){live=true;ctls.style.display='';
map.style.display='';det.style.display='';if(img)img.style.display='none';draw();});
})();"""

_CSS = ("<style>.drsl-static-explorer{font:13px sans-serif;margin:4px 0}"
        ".drsl-static-explorer .drsl-controls{display:flex;flex-wrap:wrap;gap:4px 16px;"
        "align-items:center;margin-bottom:4px}"
        ".drsl-static-explorer .drsl-figs{display:flex;flex-wrap:wrap;gap:4px}"
        ".drsl-static-explorer img.drsl-fallback{max-width:100%;height:auto}"
        ".drsl-static-explorer .drsl-caption{margin-top:4px;max-width:60em}</style>")


def _page(kind: str, controls: str, figures: str, spec: Any, script: str,
          png: bytes | None, alt: str) -> str:
    """The kernel-free figure: controls, plot divs (hidden until plotly is there), the
    picture of the first view (shown until then), a caption, the data and the script."""
    fallback = (f'<img class="drsl-fallback" alt="{alt}" '
                f'src="data:image/png;base64,{_b64(png)}">' if png else "")
    return (f'<div class="drsl-static-explorer drsl-{kind}-static">{_CSS}'
            f'<div class="drsl-controls" style="display:none">{controls}</div>'
            f"{figures}{fallback}<div class=\"drsl-caption\"></div>"
            f'<script type="application/json" class="drsl-data">{_json_script(spec)}'
            f"</script><script>{_JS_COMMON}{script}</script></div>")


class _Explorer:
    """Display logic shared by the explorers: the live widget where a front end can
    show it, else the kernel-free HTML and a picture (see :func:`headless`)."""

    last_redraw_ms: float = float("nan")

    def widget(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def static_figure(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def html(self, picture: bool = True) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def _repr_static_(self) -> dict[str, str]:
        """The headless output: kernel-free HTML (with the picture inside, for pages
        without plotly), the picture itself, and a line of text."""
        png = _png(self.static_figure())
        return {"text/plain": f"<{type(self).__name__}: {plain(self._caption())}>",
                "text/html": self.html(picture=png), "image/png": _b64(png)}

    def _caption(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def _ipython_display_(self) -> None:
        from IPython.display import display

        if headless():
            display(self._repr_static_(), raw=True)
        else:
            display(self.widget())

    def _timed(self, fn) -> None:
        start = time.perf_counter()
        fn()
        self.last_redraw_ms = 1000 * (time.perf_counter() - start)


# ----------------------------------------------------------------------------- sweep


def _sweep_layout(core: SweepCore, title: str) -> dict[str, Any]:
    """The sweep figure's layout (plotly), the same for every selection."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.08, subplot_titles=(
        f"robust accuracy along {core.sweep}", "p2 of clean-correct samples",
        "share landing on the runner-up"))
    fig.update_layout(height=380, margin=dict(l=40, r=20, t=50, b=40),
                      template="simple_white", bargap=0.05, barmode="overlay",
                      showlegend=True, legend=dict(orientation="h", y=-0.3))
    fig.update_yaxes(range=[-0.02, 1.02], row=1, col=1)
    fig.update_yaxes(range=[0, 1], row=1, col=3)
    fig.update_xaxes(title_text=core.sweep, row=1, col=1)
    fig.update_xaxes(title_text="p2", row=1, col=2)
    fig.update_xaxes(title_text=core.sweep, type="category", row=1, col=3)
    if core.sweep == "tau":
        fig.update_xaxes(type="log", row=1, col=1)
    if title:
        fig.update_layout(title=dict(text=title, font=dict(size=13)),
                          margin=dict(t=70))
    layout = fig.to_dict()["layout"]
    layout.pop("template", None)  # replaced by the few settings below, a tenth the size
    layout.update(plot_bgcolor="white", paper_bgcolor="white",
                  font=dict(family="DejaVu Sans, Arial, sans-serif", size=11))
    for name in ("xaxis", "xaxis2", "xaxis3", "yaxis", "yaxis2", "yaxis3"):
        layout[name].update(showline=True, linecolor="#444", ticks="outside",
                            zeroline=False, showgrid=name.startswith("y"),
                            gridcolor="#eee")
    return layout


def _sweep_traces(core: SweepCore, view: SweepView) -> list[dict[str, Any]]:
    """Plotly traces of one view, always as many and in the same order (curves, the
    chosen sweep value, p2 before, p2 after, runner-up share, chance), so a redraw
    swaps their data. Plain lists only: numpy arrays travel to a widget's front end as
    typed buffers, which it drops for a trace added before the view exists."""
    chosen_line = view.selection[view.line]
    chosen_x = view.selection[view.sweep]
    traces = []
    for name in core.lines:
        if name not in view.curves:
            traces.append(dict(type="scatter", x=[], y=[], visible=False, name=str(name),
                               mode="lines+markers", meta="curve"))
            continue
        xs, ys = view.curves[name]
        st = view.styles[name]
        sel = name == chosen_line
        traces.append(dict(
            type="scatter", x=_nums(xs, 6), y=_nums(ys), name=str(name), visible=True,
            mode="lines+markers", meta="curve", xaxis="x", yaxis="y",
            line=dict(color=st.color, width=3.5 if sel else 1.2,
                      dash=_DASH.get(st.linestyle, "solid")),
            marker=dict(symbol=_SYMBOL.get(st.marker, "circle"), size=7 if sel else 5),
            opacity=1.0 if sel else 0.45, legendgroup="curves"))
    traces.append(dict(type="scatter", x=[_num(chosen_x, 6)] * 2, y=[-0.02, 1.02],
                       mode="lines", meta="chosen", xaxis="x", yaxis="y",
                       line=dict(color="black", dash="dot", width=1), hoverinfo="skip",
                       showlegend=False, name=f"{view.sweep}={fmt(chosen_x)}"))
    centers = _nums((P2_BINS[:-1] + P2_BINS[1:]) / 2)
    color = view.styles[chosen_line].color
    traces.append(dict(type="bar", x=centers, y=_nums(view.p2_before), xaxis="x2",
                       yaxis="y2", name="p2 clean", meta="p2 before", opacity=0.55,
                       marker=dict(color=color, line=dict(width=0))))
    traces.append(dict(type="bar", x=centers, y=_nums(view.p2_after), xaxis="x2",
                       yaxis="y2", name="p2 adversarial", meta="p2 after",
                       marker=dict(color="rgba(0,0,0,0)",
                                   line=dict(color=_adv_color(), width=1.2))))
    labels = [fmt(x) for x in view.landing_x]
    traces.append(dict(type="bar", x=labels, y=_nums(view.landing_share), xaxis="x3",
                       yaxis="y3", name="runner-up share", meta="share", showlegend=False,
                       marker=dict(color=color, opacity=[
                           1.0 if x == chosen_x else 0.35 for x in view.landing_x])))
    traces.append(dict(type="scatter", x=labels, y=[_num(view.chance)] * len(labels),
                       xaxis="x3", yaxis="y3", mode="lines", name="chance 1/(K-1)",
                       meta="chance", showlegend=False,
                       line=dict(dash="dash", color="grey")))
    return traces


def _adv_color() -> str:
    from .plots import ADVERSARIAL_COLOR

    return ADVERSARIAL_COLOR


def _sweep_matplotlib(core: SweepCore, view: SweepView, title: str) -> Any:
    """The matplotlib figure of one view (the same numbers as the plotly traces)."""
    import matplotlib.pyplot as plt

    from .plots import _suptitle, use_style

    chosen_line, chosen_x = view.selection[view.line], view.selection[view.sweep]
    with use_style():
        fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
        for name, (xs, ys) in view.curves.items():
            st, sel = view.styles[name], name == chosen_line
            axes[0].plot(xs, ys, color=st.color, ls=st.linestyle, marker=st.marker,
                         lw=2.5 if sel else 1, alpha=1 if sel else 0.5, label=str(name))
        axes[0].axvline(chosen_x, color="black", ls=":", lw=1)
        if view.sweep == "tau":
            axes[0].set_xscale("log")
        axes[0].set(xlabel=view.sweep, ylabel="robust accuracy", ylim=(-0.02, 1.02),
                    title=f"robust accuracy along {view.sweep}")
        axes[0].legend(fontsize=7)
        color = view.styles[chosen_line].color
        axes[1].stairs(view.p2_before, P2_BINS, fill=True, color=color, alpha=0.55,
                       label="clean")
        axes[1].stairs(view.p2_after, P2_BINS, color=_adv_color(), lw=1.2,
                       label="adversarial")
        axes[1].set(xlabel="p2", ylabel="share", title="p2 of clean-correct samples")
        axes[1].legend(fontsize=7)
        pos = np.arange(len(view.landing_x))
        for p, x, v in zip(pos, view.landing_x, view.landing_share):
            axes[2].bar(p, v if np.isfinite(v) else 0, color=color,
                        alpha=1.0 if x == chosen_x else 0.35)
        axes[2].axhline(view.chance, color="grey", ls="--", lw=1)
        axes[2].set_xticks(pos, [fmt(x) for x in view.landing_x])
        axes[2].set(xlabel=view.sweep, ylim=(0, 1),
                    title="successes landing on the runner-up")
        _suptitle(fig, (f"{title}\n" if title else "") + plain(view.caption))
    return fig


class SweepExplorer(_Explorer):
    """Robust accuracy, ``p2`` before/after and where attacks land, along a sweep.

    Args:
        records: per-sample attack records (``evaluation.evaluate``'s ``records``),
            possibly several attacks and models concatenated, plus any extra column
            named by ``sweep``, ``line`` or ``controls``.
        sweep: the numeric column along which robust accuracy is drawn (``"eps"``, or
            ``"tau"`` for a tau sweep); a slider picks one of its values.
        line: the column whose values are drawn as separate lines (``"model"``); a
            dropdown picks the one whose histograms are shown.
        controls: further columns with a dropdown each (``("attack",)``).
        num_classes: for the chance level of "lands on the runner-up" (1/(K-1)).
        title: shown above the figure.
    """

    def __init__(self, records: pd.DataFrame, *, sweep: str = "eps", line: str = "model",
                 controls: Sequence[str] = ("attack",), num_classes: int | None = None,
                 title: str | None = None) -> None:
        self.core = SweepCore(records, sweep=sweep, line=line, controls=controls,
                              num_classes=num_classes)
        self.sweep_col, self.line_col, self.controls = sweep, line, self.core.controls
        self.title = title or ""
        self.chance = self.core.chance
        self.state: dict[str, Any] = self.core.default()
        self._widgets: dict[str, Any] = {}
        self._fig = self._html = self._box = None
        self._syncing = False

    # ---------------------------------------------------------------- state and data

    def options(self, column: str) -> list[Any]:
        """The values ``column`` can take given the choices made before it
        (controls, then line, then sweep)."""
        return self.core.options(column, self.state)

    def set(self, **changes: Any) -> None:
        """Change the selection, e.g. ``set(attack="pgd", eps=0.1)``; later controls
        fall back to their nearest valid value. Raises ValueError for an unknown
        column or a value the records do not have."""
        self.state = self.core.resolve(self.state, changes)
        self._sync_widgets()
        self._timed(self._redraw)

    def view(self) -> SweepView:
        """The numbers of the current selection (:class:`explore_core.SweepView`)."""
        return self.core.view(self.state)

    def summary(self) -> dict[str, Any]:
        """The numbers behind the current view."""
        return self.view().summary()

    def _caption(self) -> str:
        return self.view().caption

    # ----------------------------------------------------------------- renderers

    def static_figure(self) -> Any:
        """A matplotlib figure of the current selection."""
        return _sweep_matplotlib(self.core, self.view(), self.title)

    def html(self, picture: bool | bytes = True) -> str:
        """The kernel-free interactive figure: every selection precomputed, picked
        with dropdowns and a slider; it needs ``window.Plotly`` (loaded once by the
        page) and nothing from the network. ``picture`` (True, or PNG bytes) is shown
        until plotly is there."""
        layout = _sweep_layout(self.core, self.title)
        layout.pop("width", None)
        layout["autosize"] = True
        states, keys = {}, []
        for sel in self.core.selections():
            key = _SEP.join(fmt(sel[c]) for c in self.core.order)
            view = self.core.view(sel)
            states[key] = {"d": _sweep_traces(self.core, view), "c": view.caption}
            keys.append(key)
        start = _SEP.join(fmt(self.state[c]) for c in self.core.order)
        spec = {"order": list(self.core.order), "sep": _SEP, "keys": keys, "start": start,
                "states": states, "layout": layout}
        controls = "".join(
            f'<label>{c} <select data-col="{c}"></select></label>'
            for c in self.core.order[:-1])
        controls += (f'<label>{self.sweep_col} <input type="range" min="0" max="0" '
                     f'step="1" data-col="{self.sweep_col}"> <b class="drsl-value"></b>'
                     "</label>")
        figures = '<div class="drsl-plot" style="display:none;width:100%;height:380px"></div>'
        png = _png(self.static_figure()) if picture is True else (picture or None)
        return _page("sweep", controls, figures, spec, _SWEEP_JS, png,
                     "the sweep explorer's first view")

    def widget(self) -> Any:
        """The live view: dropdowns, a slider and a plotly ``FigureWidget``."""
        import ipywidgets as W
        import plotly.graph_objects as go

        if self._box is not None:
            return self._box
        for c in (*self.controls, self.line_col):
            w = W.Dropdown(options=[(fmt(o), o) for o in self.options(c)],
                           value=self.state[c], description=c,
                           layout=W.Layout(width="260px"))
            w.observe(lambda ch, c=c: self._on_widget(c, ch), names="value")
            self._widgets[c] = w
        s = W.SelectionSlider(options=[(fmt(o), o) for o in self.options(self.sweep_col)],
                              value=self.state[self.sweep_col], description=self.sweep_col,
                              continuous_update=False, layout=W.Layout(width="360px"))
        s.observe(lambda ch: self._on_widget(self.sweep_col, ch), names="value")
        self._widgets[self.sweep_col] = s
        layout = _sweep_layout(self.core, "")
        layout["width"] = 980
        # The first view goes in at construction, so the widget starts complete; later
        # changes travel as updates of the same traces.
        self._fig = go.FigureWidget(data=_sweep_traces(self.core, self.view()),
                                    layout=layout)
        self._html = W.HTML(self._caption())
        title = W.HTML(f"<h4>{self.title}</h4>") if self.title else W.HTML()
        controls = W.HBox([self._widgets[c] for c in (*self.controls, self.line_col)]
                          + [self._widgets[self.sweep_col]],
                          layout=W.Layout(flex_flow="row wrap"))
        self._box = W.VBox([title, controls, self._fig, self._html])
        self._box.add_class("drsl-sweep-explorer")
        return self._box

    def _on_widget(self, col: str, change: Mapping[str, Any]) -> None:
        if self._syncing or change["new"] == self.state.get(col):
            return
        self.set(**{col: change["new"]})

    def _sync_widgets(self) -> None:
        if not self._widgets:
            return
        self._syncing = True
        try:
            for c, w in self._widgets.items():
                opts = [(fmt(o), o) for o in self.options(c)]
                if list(w.options) != opts:
                    w.options = opts
                if w.value != self.state[c]:
                    w.value = self.state[c]
        finally:
            self._syncing = False

    def _redraw(self) -> None:
        if self._fig is None:
            return
        view = self.view()
        with self._fig.batch_update():
            # Every property is set, not only the data: the front end keeps what the
            # last update sent.
            for trace, new in zip(self._fig.data, _sweep_traces(self.core, view)):
                trace.update({k: v for k, v in new.items() if k != "type"})
        self._html.value = view.caption


def sweep(records: pd.DataFrame, **kwargs: Any) -> SweepExplorer:
    """A :class:`SweepExplorer` over ``records`` (see its arguments)."""
    return SweepExplorer(records, **kwargs)


# --------------------------------------------------------------------------- samples


def _to_uint8(img: np.ndarray) -> np.ndarray:
    rgb = img if img.shape[-1] == 3 else np.repeat(img[..., :1], 3, axis=-1)
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)


def _images(view: SampleView) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The clean, adversarial and perturbation pictures (``[H, W, 3]`` uint8), drawn
    the same in every renderer. Grey-scale images are ink on paper (1 is black, as the
    digits are drawn everywhere else); the perturbation is rescaled to its largest
    entry: for grey-scale images through a red-blue map (red where the value rose),
    for colour images around mid-grey per channel."""
    import matplotlib

    delta = view.delta
    scale = max(1e-8, float(np.abs(delta).max()))
    if delta.shape[-1] == 1:
        rgba = matplotlib.colormaps["RdBu_r"](0.5 + delta[..., 0] / (2 * scale))
        return (_to_uint8(1 - view.clean_image), _to_uint8(1 - view.adv_image),
                _to_uint8(rgba[..., :3]))
    pert = 0.5 + delta / (2 * scale)
    return _to_uint8(view.clean_image), _to_uint8(view.adv_image), _to_uint8(pert)


def _png_uri(img: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    grey = bool((img == img[..., :1]).all())  # one channel: a third of the bytes
    Image.fromarray(img[..., 0] if grey else img).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + _b64(buf.getvalue())


def _detail_layout(class_names: Sequence[str]) -> dict[str, Any]:
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=4, column_widths=[0.17, 0.17, 0.17, 0.49],
                        horizontal_spacing=0.04,
                        subplot_titles=("clean", "adversarial", "perturbation", "softmax"))
    fig.update_layout(height=270, width=600, template="simple_white", barmode="group",
                      margin=dict(l=10, r=10, t=40, b=60), bargap=0.15,
                      legend=dict(orientation="h", y=-0.3))
    for col in (1, 2, 3):
        fig.update_xaxes(visible=False, row=1, col=col)
        fig.update_yaxes(visible=False, autorange="reversed", scaleanchor=f"x{col}",
                         row=1, col=col)
    fig.update_yaxes(range=[0, 1], row=1, col=4)
    fig.update_xaxes(tickangle=-60, tickfont=dict(size=9), row=1, col=4)
    return fig.to_dict()["layout"]


def _detail_traces(core: SampleCore, view: SampleView) -> list[dict[str, Any]]:
    """Three pictures and two bar sets; plain lists, a fixed order (see
    :func:`_sweep_traces`)."""
    pics = _images(view)
    traces: list[dict[str, Any]] = [
        dict(type="image", source=_png_uri(p), xaxis=f"x{i + 1}", yaxis=f"y{i + 1}",
             hoverinfo="skip", name=name)
        for i, (p, name) in enumerate(zip(pics, ("clean", "adversarial", "perturbation")))]
    for probs, name, color in ((view.clean_softmax, "before", view.color),
                               (view.adv_softmax, "after", view.adv_color)):
        traces.append(dict(type="bar", x=list(core.class_names), y=_nums(probs),
                           name=name, xaxis="x4", yaxis="y4", marker=dict(color=color)))
    return traces


def _map_layout() -> dict[str, Any]:
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.update_layout(height=430, width=400, template="simple_white",
                      margin=dict(l=10, r=10, t=30, b=10), hovermode="closest",
                      legend=dict(font=dict(size=9)),
                      title=dict(text="click a point", font=dict(size=12)))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig.to_dict()["layout"]


def _map_traces(core: SampleCore, model: str) -> list[dict[str, Any]]:
    """The model's 2-D view: clean points by true class, adversarial points (diamonds,
    coloured by the class they landed on)."""
    p = core.panels[model]
    traces = []
    for c, name in enumerate(core.class_names):
        rows = np.flatnonzero(np.asarray(p.clean_labels) == c)
        traces.append(dict(type="scatter", mode="markers", name=str(name), meta="clean",
                           x=_nums(p.clean_2d[rows, 0], 3), y=_nums(p.clean_2d[rows, 1], 3),
                           customdata=[[int(r)] for r in rows],
                           marker=dict(size=5, color=core.point_colors([c])[0],
                                       opacity=0.55)))
    landed = (np.asarray(p.adv_pred) if p.adv_pred is not None
              else np.zeros(len(p.adv_2d), int))
    traces.append(dict(type="scatter", mode="markers", name="adversarial", meta="adv",
                       x=_nums(p.adv_2d[:, 0], 3), y=_nums(p.adv_2d[:, 1], 3),
                       customdata=[[int(r)] for r in np.asarray(p.adv_orig_index)],
                       marker=dict(size=8, symbol="diamond", color=core.point_colors(landed),
                                   line=dict(width=1, color="black"))))
    return traces


def _selected_trace(core: SampleCore, view: SampleView) -> dict[str, Any]:
    xy = core.panels[view.model].clean_2d[view.sample]
    return dict(type="scatter", mode="markers", name="selected", meta="sel",
                x=[_num(xy[0], 3)], y=[_num(xy[1], 3)], hoverinfo="skip",
                marker=dict(size=16, symbol="circle-open", color="black",
                            line=dict(width=3, color="black")))


def _sample_matplotlib(core: SampleCore, view: SampleView) -> Any:
    """The matplotlib figure of one sample (the same pictures and numbers)."""
    import matplotlib.pyplot as plt

    from .plots import _suptitle, use_style

    p = core.panels[view.model]
    landed = (np.asarray(p.adv_pred) if p.adv_pred is not None
              else np.zeros(len(p.adv_2d), int))
    with use_style():
        fig = plt.figure(figsize=(11, 4))
        grid = fig.add_gridspec(1, 5, width_ratios=[2.2, 1, 1, 1, 2.2])
        ax = fig.add_subplot(grid[0])
        ax.scatter(p.clean_2d[:, 0], p.clean_2d[:, 1], s=3, alpha=0.5,
                   c=core.point_colors(p.clean_labels))
        ax.scatter(p.adv_2d[:, 0], p.adv_2d[:, 1], s=12, marker="D", edgecolors="black",
                   linewidths=0.4, c=core.point_colors(landed))
        xy = p.clean_2d[view.sample]
        ax.scatter([xy[0]], [xy[1]], s=160, facecolors="none", edgecolors="black",
                   linewidths=2)
        ax.set_title(f"{view.model}: {core.attack} at eps={core.eps:g}", fontsize=9)
        ax.set_axis_off()
        for col, (img, title) in enumerate(zip(_images(view),
                                               ("clean", "adversarial", "perturbation"))):
            a = fig.add_subplot(grid[1 + col])
            a.imshow(img)
            a.set_title(title, fontsize=9)
            a.set_axis_off()
        a = fig.add_subplot(grid[4])
        pos = np.arange(len(core.class_names))
        a.bar(pos - 0.2, view.clean_softmax, width=0.4, label="before", color=view.color)
        a.bar(pos + 0.2, view.adv_softmax, width=0.4, label="after", color=view.adv_color)
        a.set_xticks(pos, core.class_names, rotation=60, fontsize=7)
        a.set(ylim=(0, 1), ylabel="softmax")
        a.legend(fontsize=7)
        _suptitle(fig, plain(view.caption))
    return fig


class SampleExplorer(_Explorer):
    """Click a point of a model's 2-D view to see that sample before and after attack.

    Args:
        result: the ``evaluation.AttackResult`` the panels were drawn from (a test set
            small enough to keep its images, see ``evaluation.ADV_IMAGES_MAX``).
        panels: ``embed.UmapPanel`` objects (``experiments.umap_panels``), one per model.
        keys: panel name -> the model key whose records the panel shows.
        attack, eps: the attack and radius the panels' adversarial points come from.
        class_names: class labels for the bars and captions.
        n_static: samples per model in the kernel-free figure (:meth:`html`).
    """

    def __init__(self, result: Any, panels: Sequence[Any], keys: Mapping[str, str], *,
                 attack: str, eps: float, class_names: Sequence[str] | None = None,
                 n_static: int = 60) -> None:
        self.core = SampleCore(result, panels, keys, attack=attack, eps=eps,
                               class_names=class_names)
        self.result, self.attack, self.eps = result, attack, self.core.eps
        self.panels, self.keys = self.core.panels, self.core.keys
        self.class_names, self.images, self.labels = (self.core.class_names,
                                                      self.core.images, self.core.labels)
        self.n_static = int(n_static)
        self.model = panels[0].name
        cands = self.candidates()
        self.sample = int(cands[0]) if len(cands) else 0
        self._fig = self._detail = self._html = self._box = None
        self._model_w = self._index_w = None
        self._drawn_model: str | None = None

    def candidates(self, landed_on_runner_up: bool | None = None) -> np.ndarray:
        """Indices of successfully attacked samples of the current model; with
        ``landed_on_runner_up=False``, only those whose attack did not land on the clean
        runner-up (the exercise of the explorers notebook)."""
        return self.core.candidates(self.model, landed_on_runner_up)

    def sample_info(self, i: int | None = None) -> dict[str, Any]:
        """What the sample panel says about sample ``i`` (default: the selected one)."""
        return self.core.info(self.model, self.sample if i is None else i)

    def view(self) -> SampleView:
        """The numbers of the selected sample (:class:`explore_core.SampleView`)."""
        return self.core.view(self.model, self.sample)

    def select(self, i: int, model: str | None = None) -> dict[str, Any]:
        """Show sample ``i`` (optionally of another model); returns :meth:`sample_info`."""
        if model is not None:
            self.core.info(model, i)  # validates both before anything changes
            self.model = model
        info = self.sample_info(i)
        self.sample = int(i)
        self._sync()
        self._timed(self._redraw)
        return info

    def _caption(self) -> str:
        return self.view().caption

    # ----------------------------------------------------------------- renderers

    def static_figure(self) -> Any:
        """A matplotlib figure: the 2-D view and the selected sample's panel."""
        return _sample_matplotlib(self.core, self.view())

    def html(self, picture: bool | bytes = True) -> str:
        """The kernel-free interactive figure over a fixed set of ``n_static`` samples
        per model (:meth:`explore_core.SampleCore.fixed_samples`, the selected sample
        included): pick a model and a sample (slider, a click on a point of the set, or
        "next: not on runner-up"); it needs ``window.Plotly`` and nothing from the
        network. ``picture`` (True, or PNG bytes) is shown until plotly is there."""
        per = {}
        for model in self.panels:
            ids = self.core.fixed_samples(model, self.n_static)
            if model == self.model and self.sample not in ids:
                ids = sorted([*ids[:-1], self.sample])
            states = {}
            for i in ids:
                view = self.core.view(model, i)
                states[i] = {"d": _detail_traces(self.core, view), "c": view.caption,
                             "sel": _selected_trace(self.core, view),
                             "off": bool(view.info["attack_succeeded"]
                                         and not view.info["landed_on_runner_up"])}
            per[model] = {"samples": ids, "states": states,
                          "scatter": _map_traces(self.core, model)}
        spec = {"models": list(self.panels), "start": [self.model, self.sample],
                "per": per, "mapLayout": _map_layout(),
                "detailLayout": _detail_layout(self.class_names)}
        controls = ('<label>model <select data-col="model"></select></label>'
                    '<label>sample <input type="range" min="0" max="0" step="1" '
                    'data-col="sample"> <b class="drsl-value"></b></label>'
                    '<button type="button" class="drsl-next">next: not on runner-up'
                    "</button>")
        figures = ('<div class="drsl-figs"><div class="drsl-map" style="display:none">'
                   '</div><div class="drsl-detail" style="display:none"></div></div>')
        png = _png(self.static_figure()) if picture is True else (picture or None)
        return _page("sample", controls, figures, spec, _SAMPLE_JS, png,
                     "the sample explorer's first view")

    def widget(self) -> Any:
        """The live view: a model dropdown, the clickable 2-D view and the sample panel."""
        import ipywidgets as W
        import plotly.graph_objects as go

        if self._box is not None:
            return self._box
        self._model_w = W.Dropdown(options=list(self.panels), value=self.model,
                                   description="model")
        self._model_w.observe(self._on_model, names="value")
        self._index_w = W.BoundedIntText(value=self.sample, min=0, max=len(self.labels) - 1,
                                         description="sample")
        self._index_w.observe(self._on_index, names="value")
        button = W.Button(description="next: not on runner-up",
                          tooltip="jump to a successful attack that did not land on the "
                                  "clean runner-up")
        button.on_click(self._on_next)
        view = self.view()
        self._fig = go.FigureWidget(
            data=[*_map_traces(self.core, self.model), _selected_trace(self.core, view)],
            layout=_map_layout())
        self._fig.layout.title.text = f"{self.model}: {self.attack} at eps={self.eps:g}"
        self._drawn_model = self.model
        self._detail = go.FigureWidget(data=_detail_traces(self.core, view),
                                       layout=_detail_layout(self.class_names))
        self._html = W.HTML(view.caption)
        self._html.add_class("drsl-sample-caption")
        for t in self._fig.data[:-1]:
            t.on_click(self._on_click)
        # 400 + 610 px fit side by side in a 1500 px window with the file browser open;
        # in a narrower one the two figures wrap onto two rows instead of hiding the
        # softmax bars behind a horizontal scroll bar.
        self._box = W.VBox([
            W.HBox([self._model_w, self._index_w, button],
                   layout=W.Layout(flex_flow="row wrap")),
            W.HBox([self._fig, W.VBox([self._detail, self._html],
                                      layout=W.Layout(width="610px"))],
                   layout=W.Layout(flex_flow="row wrap"))])
        self._box.add_class("drsl-sample-explorer")
        return self._box

    def _on_click(self, trace: Any, points: Any, _state: Any) -> None:
        if not points.point_inds:
            return
        idx = trace.customdata[points.point_inds[0]]
        self.select(int(idx[0] if np.ndim(idx) else idx))

    def _on_model(self, change: Mapping[str, Any]) -> None:
        if change["new"] != self.model:
            self.model = change["new"]
            cands = self.candidates()
            self.select(int(cands[0]) if len(cands) else self.sample)

    def _on_index(self, change: Mapping[str, Any]) -> None:
        if change["new"] != self.sample:
            self.select(int(change["new"]))

    def _on_next(self, _button: Any) -> None:
        cands = self.candidates(landed_on_runner_up=False)
        if len(cands):
            later = cands[cands > self.sample]
            self.select(int(later[0] if len(later) else cands[0]))

    def _sync(self) -> None:
        if self._model_w is not None and self._model_w.value != self.model:
            self._model_w.value = self.model
        if self._index_w is not None and self._index_w.value != self.sample:
            self._index_w.value = self.sample

    def _redraw(self) -> None:
        if self._fig is None:
            return
        view = self.view()
        with self._fig.batch_update():
            if self._drawn_model != self.model:
                for trace, new in zip(self._fig.data, _map_traces(self.core, self.model)):
                    trace.update({k: v for k, v in new.items() if k != "type"})
                self._drawn_model = self.model
            self._fig.data[-1].update({k: v for k, v in
                                       _selected_trace(self.core, view).items()
                                       if k != "type"})
            self._fig.layout.title.text = f"{self.model}: {self.attack} at eps={self.eps:g}"
        with self._detail.batch_update():
            for trace, new in zip(self._detail.data, _detail_traces(self.core, view)):
                trace.update({k: v for k, v in new.items() if k != "type"})
        self._html.value = view.caption


def samples(result: Any, panels: Sequence[Any], zoo: Mapping[str, Sequence[Any]], *,
            attack: str, eps: float, seed_index: int = 0,
            class_names: Sequence[str] | None = None) -> SampleExplorer:
    """A :class:`SampleExplorer` for ``panels`` drawn from ``zoo``'s ``seed_index``-th
    seed (as ``experiments.umap_panels`` draws them)."""
    keys = {p.name: zoo[p.name][min(seed_index, len(zoo[p.name]) - 1)].key for p in panels}
    return SampleExplorer(result, panels, keys, attack=attack, eps=eps,
                          class_names=class_names)
