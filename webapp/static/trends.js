// The trending page: filter the list of trends as you type.
//
// The selection itself is a plain GET form (overwatch.js follows it without a
// reload), so the URL always names the trends shown. Filtering hides the
// histograms and trend names that do not contain the text; checked trends stay
// visible so a selection is never hidden.

function applyFilter(form, text) {
  const words = text.toLowerCase().split(/\s+/).filter(Boolean);
  form.querySelectorAll('.ow-trend-group').forEach((group) => {
    let visible = 0;
    group.querySelectorAll('label[data-key]').forEach((label) => {
      const key = label.dataset.key.toLowerCase();
      const checked = label.querySelector('input').checked;
      const show = checked || words.every((word) => key.includes(word));
      label.hidden = !show;
      if (show) visible += 1;
    });
    group.hidden = visible === 0;
  });
}

export function initPage(page) {
  const form = page.querySelector('form.ow-trend-picker');
  if (!form) return;
  const filter = form.querySelector('.ow-trend-filter');
  if (!filter) return;
  filter.addEventListener('input', () => applyFilter(form, filter.value));
  filter.addEventListener('keydown', (event) => {
    if (event.key === 'Enter') event.preventDefault(); // Enter filters; the button draws
  });
}
