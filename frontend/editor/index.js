// The request editor: CodeMirror 6 with JSON, and the request's JSON Schema (from the API's
// /openapi.json) driving completion and inline errors, every one at once, on its line. The
// server's own checks (shapes, limits, what a schema cannot say) come back from /validate as
// field paths; `showServerErrors` puts them on their lines too. Bundled by esbuild into
// dist/lib/editor.js (build.mjs): the page itself stays plain ES modules.
import { autocompletion } from "@codemirror/autocomplete";
import { json, jsonParseLinter } from "@codemirror/lang-json";
import { forEachDiagnostic, forceLinting, linter, lintGutter } from "@codemirror/lint";
import { EditorState, StateEffect, StateField } from "@codemirror/state";
import { EditorView } from "@codemirror/view";
import { basicSetup } from "codemirror";
import { getJsonPointers, handleRefresh, jsonCompletion, jsonSchemaLinter, stateExtensions, updateSchema } from "codemirror-json-schema";
import { plainDiagnostics, pointerOf } from "./messages.js";

// The server's errors of the last Validate or Submit, kept until the document changes (they may
// no longer hold after an edit) and handed to the linter with the schema's own: the linter
// replaces all diagnostics each time it runs, so errors set beside it would vanish at its next run.
const setServerErrors = StateEffect.define();
const serverErrors = StateField.define({
  create: () => [],
  update(errors, transaction) {
    for (const effect of transaction.effects) if (effect.is(setServerErrors)) return effect.value;
    return transaction.docChanged ? [] : errors;
  },
});

// The linter runs again when the schema changes, and when the server's errors do: forceLinting
// runs only a lint that is pending, so a Validate answered after the typing pause (300 ms) had
// its errors listed below the editor but never marked in it.
const newServerErrors = (transaction) => transaction.effects.some((effect) => effect.is(setServerErrors));

export function createEditor(parent, { label, describedBy, onChange = () => {} }) {
  const schemaLinter = jsonSchemaLinter();
  const parseLinter = jsonParseLinter();
  let schema = null; // the request's, for the schema errors' words
  // the schema's errors in the server's words (messages.js), for a document that parses; the
  // library's words where rewording fails, none where the library fails (a syntax tree still
  // being parsed on a busy machine, say): a linter that throws shows nothing, the server's errors
  // neither
  const schemaErrors = (v) => {
    let found;
    try {
      found = schemaLinter(v);
    } catch {
      return [];
    }
    if (!found.length) return found;
    try {
      const text = v.state.doc.toString();
      return plainDiagnostics(found, { root: schema, doc: JSON.parse(text), text, pointers: getJsonPointers(v.state, "json") });
    } catch {
      return found;
    }
  };
  const view = new EditorView({
    parent,
    state: EditorState.create({
      doc: "",
      extensions: [
        basicSetup,
        json(),
        lintGutter(),
        serverErrors,
        // JSON syntax first; schema errors only for a document that parses; the server's beside them
        linter((v) => {
          const syntax = parseLinter(v);
          return [...(syntax.length ? syntax : schemaErrors(v)), ...v.state.field(serverErrors)];
        }, { delay: 300, needsRefresh: (update) => handleRefresh(update) || update.transactions.some(newServerErrors) }),
        autocompletion({ override: [jsonCompletion()] }),
        stateExtensions(),
        EditorView.contentAttributes.of({ "aria-label": label, ...(describedBy ? { "aria-describedby": describedBy } : {}) }),
        EditorView.updateListener.of((update) => update.docChanged && onChange(update.state.doc.toString())),
      ],
    }),
  });

  // axe-core wants a scrollable region reachable by keyboard, and does not count the editable
  // content inside it: the scroller itself takes focus (and hands it to the content on a click)
  view.scrollDOM.tabIndex = 0;
  view.scrollDOM.setAttribute("aria-label", `${label}, scroll area`);
  return {
    view,
    getText: () => view.state.doc.toString(),
    setText(text) {
      view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } });
    },
    setSchema(requestSchema) {
      schema = requestSchema;
      updateSchema(view, requestSchema); // the linter runs again (needsRefresh)
    },
    // The errors /validate returned, on the lines of their fields (the closest enclosing field
    // that the document has, when the error names one it lacks); returns each error's line.
    showServerErrors(errors) {
      const pointers = getJsonPointers(view.state, "json");
      const doc = view.state.doc;
      const diagnostics = [];
      const lines = errors.map((error) => {
        let loc = [...error.loc];
        let place = pointers.get(pointerOf(loc));
        while (!place && loc.length) {
          loc = loc.slice(0, -1);
          place = pointers.get(pointerOf(loc));
        }
        const from = place ? (place.keyFrom ?? place.valueFrom) : 0;
        const to = place ? Math.max(from, Math.min(place.valueTo ?? place.keyTo ?? from, doc.lineAt(from).to)) : Math.min(1, doc.length);
        diagnostics.push({ from, to, severity: "error", message: error.msg, source: "server" });
        return doc.lineAt(from).number;
      });
      view.dispatch({ effects: setServerErrors.of(diagnostics) });
      forceLinting(view);
      return lines;
    },
    // What the editor marks now (schema and syntax errors, server errors), with their lines.
    diagnostics() {
      const found = [];
      forEachDiagnostic(view.state, (d, from) => found.push({ line: view.state.doc.lineAt(from).number, message: d.message }));
      return found;
    },
  };
}
