// Where the sign-in page may go next: a page of this site, never another one. The server applies
// the same rule (contact_center/web_setup.py, same_site_path).

// `target` resolved by the browser's URL parser against `origin`, as a path of that site, or null
// when it would lead anywhere else (another host or scheme, or a path starting "//").
export function sameSitePath(target, origin = location.origin) {
  let url;
  try {
    url = new URL(target, `${origin}/`);
  } catch {
    return null;
  }
  if (url.origin !== origin) return null;
  if (!url.pathname.startsWith("/") || url.pathname.startsWith("//")) return null;
  return url.pathname + url.search + url.hash;
}
