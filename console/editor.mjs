// The console's code editor: CodeMirror 6 with Python and JavaScript, bundled by
// build.mjs into src/coderunner/_console/static/editor.js (an ES module that console.js
// imports).  Its one export, createEditor, hides CodeMirror behind a small interface.

import { autocompletion, closeBrackets, closeBracketsKeymap, completionKeymap } from "@codemirror/autocomplete";
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import { javascript } from "@codemirror/lang-javascript";
import { python } from "@codemirror/lang-python";
import {
  bracketMatching,
  defaultHighlightStyle,
  foldGutter,
  foldKeymap,
  indentOnInput,
  indentUnit,
  syntaxHighlighting,
} from "@codemirror/language";
import { highlightSelectionMatches, searchKeymap } from "@codemirror/search";
import { Compartment, EditorState, Prec, RangeSet, StateEffect, StateField } from "@codemirror/state";
import {
  Decoration,
  EditorView,
  GutterMarker,
  WidgetType,
  crosshairCursor,
  drawSelection,
  dropCursor,
  gutter,
  highlightActiveLine,
  highlightActiveLineGutter,
  highlightSpecialChars,
  keymap,
  lineNumbers,
  rectangularSelection,
} from "@codemirror/view";

const LANGUAGES = {
  python: () => [python(), indentUnit.of("    ")],
  javascript: () => [javascript(), indentUnit.of("  ")],
};

// -- the error mark: a line decoration, a gutter marker and the message under the line --

const setError = StateEffect.define();

const errorField = StateField.define({
  create: () => null, // or {line, message}
  update(value, tr) {
    for (const effect of tr.effects) if (effect.is(setError)) value = effect.value;
    // An edit makes the mark stale: it goes until the next run.
    if (tr.docChanged && !tr.effects.some((e) => e.is(setError))) value = null;
    return value;
  },
});

class ErrorMessageWidget extends WidgetType {
  constructor(message) {
    super();
    this.message = message;
  }
  eq(other) {
    return other.message === this.message;
  }
  toDOM() {
    const box = document.createElement("div");
    box.className = "cm-errorMessage";
    box.setAttribute("role", "note");
    box.textContent = this.message;
    return box;
  }
  ignoreEvent() {
    return false;
  }
}

class ErrorMarker extends GutterMarker {
  constructor(message) {
    super();
    this.message = message;
  }
  eq(other) {
    return other.message === this.message;
  }
  toDOM() {
    const mark = document.createElement("span");
    mark.className = "cm-errorMarker";
    mark.title = this.message;
    mark.textContent = "●";
    return mark;
  }
}

function errorLine(state) {
  const error = state.field(errorField);
  if (!error || !Number.isInteger(error.line) || error.line < 1) return null;
  return { line: state.doc.line(Math.min(error.line, state.doc.lines)), message: error.message };
}

const errorDecorations = EditorView.decorations.compute([errorField], (state) => {
  const found = errorLine(state);
  if (!found) return Decoration.none;
  return Decoration.set([
    Decoration.line({ class: "cm-errorLine" }).range(found.line.from),
    Decoration.widget({ widget: new ErrorMessageWidget(found.message), block: true, side: 1 }).range(
      found.line.to,
    ),
  ]);
});

const errorGutter = gutter({
  class: "cm-errorGutter",
  markers: (view) => {
    const found = errorLine(view.state);
    return found ? RangeSet.of([new ErrorMarker(found.message).range(found.line.from)]) : RangeSet.empty;
  },
  initialSpacer: () => new ErrorMarker(""),
});

const theme = EditorView.theme({
  "&": { height: "100%", fontSize: "14px" },
  ".cm-scroller": { fontFamily: "var(--mono, ui-monospace, monospace)", lineHeight: "1.5" },
  ".cm-errorLine": { backgroundColor: "var(--error-line, #fde8e8)" },
  ".cm-errorGutter": { width: "1.1em" },
  ".cm-errorMarker": { color: "var(--error, #b3261e)", fontSize: "0.8em", paddingLeft: "2px" },
  ".cm-errorMessage": {
    color: "var(--error, #b3261e)",
    backgroundColor: "var(--error-bg, #fff4f4)",
    borderLeft: "3px solid var(--error, #b3261e)",
    padding: "2px 8px",
    fontFamily: "var(--sans, system-ui, sans-serif)",
    fontSize: "13px",
    whiteSpace: "pre-wrap",
  },
});

/**
 * A CodeMirror editor in `parent`.
 *
 * @param {HTMLElement} parent
 * @param {{doc?: string, language?: string, label?: string,
 *          onChange?: (code: string) => void, onRun?: () => void}} options
 */
export function createEditor(parent, options = {}) {
  const language = new Compartment();
  let current = LANGUAGES[options.language] ? options.language : "python";
  const runKeys = Prec.highest(
    keymap.of([
      {
        key: "Mod-Enter",
        run: () => {
          options.onRun?.();
          return true;
        },
      },
    ]),
  );
  const view = new EditorView({
    parent,
    state: EditorState.create({
      doc: options.doc ?? "",
      extensions: [
        runKeys,
        errorGutter,
        lineNumbers(),
        highlightActiveLineGutter(),
        highlightSpecialChars(),
        history(),
        foldGutter(),
        drawSelection(),
        dropCursor(),
        EditorState.allowMultipleSelections.of(true),
        indentOnInput(),
        syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
        bracketMatching(),
        closeBrackets(),
        // Completion on Ctrl+Space only: Enter always means a new line while typing.
        autocompletion({ activateOnTyping: false }),
        rectangularSelection(),
        crosshairCursor(),
        highlightActiveLine(),
        highlightSelectionMatches(),
        // Tab indents; Escape then Tab moves focus out of the editor (CodeMirror's
        // tab-focus escape), so keyboard users are never trapped.
        keymap.of([
          ...closeBracketsKeymap,
          ...defaultKeymap,
          ...searchKeymap,
          ...historyKeymap,
          ...foldKeymap,
          ...completionKeymap,
          indentWithTab,
        ]),
        language.of(LANGUAGES[current]()),
        errorField,
        errorDecorations,
        theme,
        EditorView.lineWrapping,
        EditorView.contentAttributes.of({ "aria-label": options.label ?? "Code" }),
        EditorView.updateListener.of((update) => {
          if (update.docChanged) options.onChange?.(update.state.doc.toString());
        }),
      ],
    }),
  });

  return {
    view,
    get code() {
      return view.state.doc.toString();
    },
    get language() {
      return current;
    },
    setCode(code) {
      view.dispatch({
        changes: { from: 0, to: view.state.doc.length, insert: code },
        effects: setError.of(null),
      });
    },
    setLanguage(name) {
      if (!LANGUAGES[name] || name === current) return;
      current = name;
      view.dispatch({ effects: language.reconfigure(LANGUAGES[name]()) });
    },
    /** Mark `line` (1-based) and show `message` under it; scrolls it into view. */
    showError(line, message) {
      if (!Number.isInteger(line) || line < 1) {
        view.dispatch({ effects: setError.of(null) });
        return;
      }
      const target = view.state.doc.line(Math.min(line, view.state.doc.lines));
      view.dispatch({
        effects: [setError.of({ line, message }), EditorView.scrollIntoView(target.from, { y: "center" })],
      });
    },
    clearError() {
      if (view.state.field(errorField)) view.dispatch({ effects: setError.of(null) });
    },
    focus() {
      view.focus();
    },
  };
}
