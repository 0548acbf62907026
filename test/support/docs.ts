// The user's documentation as the tests read it: README.md (the front door) and docs/*.md (one page per
// audience). A section is found by its `## ` heading in whichever file holds it.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export const DOC_FILES = ['README.md', ...readdirSync('docs').filter((f) => f.endsWith('.md')).sort().map((f) => join('docs', f))];

export function readDoc(file: string): string {
  return readFileSync(file, 'utf8');
}

/** README and every docs/ page, one after another. */
export function allDocs(): string {
  return DOC_FILES.map(readDoc).join('\n');
}

/** The section under `## title`, up to the next `## ` heading, from the file that holds it. */
export function docSection(title: string): string {
  for (const file of DOC_FILES) {
    const text = readDoc(file);
    const from = text.indexOf(`\n## ${title}`);
    if (from < 0) continue;
    const to = text.indexOf('\n## ', from + 4);
    return text.slice(from, to < 0 ? undefined : to);
  }
  throw new Error(`no section "## ${title}" in ${DOC_FILES.join(', ')}`);
}

/** GitHub's anchor for a heading: lower case, punctuation dropped but hyphens, spaces to hyphens. */
export function anchorOf(heading: string): string {
  return heading.trim().toLowerCase().replace(/[^a-z0-9 _-]/g, '').replace(/ /g, '-');
}
