// The JSROOT GUI of /jsroot/ (webapp/templates/jsroot_gui.html, webapp/jsroot_tree.py).
//
// JSROOT's buildGUI in online mode, as THttpServer's default page starts it: the top of
// the tree comes embedded in the page, every other level from <item>/h.json, every object
// from <item>/root.json.gz. One addition: the snapshot files listed under
// Run<N>/<SYS>/files name OverwatchJsroot.openSnapshot as their _expand function, which
// opens the file with JSROOT's openFile (HTTP range requests) and lists its keys in place.

const gui = document.getElementById('onlineGUI');
const [{ buildGUI, internals }, { openFile }] = await Promise.all([
   import(gui.dataset.gui), import(gui.dataset.io)
]);

const embedded = document.getElementById('ow-jsroot-hierarchy');
if (embedded)
   internals.getCachedHierarchy = () => JSON.parse(embedded.textContent);

const overwatch = globalThis.OverwatchJsroot = {
   painter: null, // the HierarchyPainter, once the GUI is built

   // A snapshot file item's _expand: read the raw file in the browser, show its keys.
   async openSnapshot(item) {
      const file = await openFile(item._url);
      for (const name of ['_expand', '_obj', '_click_action', '_more'])
         delete item[name];
      item._isopen = true;
      overwatch.painter.fileHierarchy(file, item);
      return true;
   }
};

overwatch.painter = await buildGUI(gui, 'online');
