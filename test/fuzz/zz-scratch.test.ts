import { parseWeChatXml, buildWeChatXml } from '../../src/wechat/xml';
test('x', () => {
  for (const v of ['', ' ', '  \n', 'a\r\nb', '\r', '\u0000', '\u0001x', '\ud800', '\uffff', '\ufffe', 'a]]>b', '\t', '18446744073709551615', '00123', '&amp;']) {
    try { const r = parseWeChatXml(buildWeChatXml({ A: v })); console.log(JSON.stringify(v), '->', JSON.stringify(r.A)); }
    catch (e) { console.log(JSON.stringify(v), 'THROW', (e as Error).message, String((e as any).cause)); }
  }
  for (const t of ['<xml><a> x </a></xml>', '<xml><a>&amp;</a></xml>', '<xml><a>&foo;</a></xml>', '<xml><a>\u0000</a></xml>', '<xml>\r\n<a>1\r\n2</a></xml>']) {
    try { console.log(JSON.stringify(t), JSON.stringify(parseWeChatXml(t))); } catch (e) { console.log(JSON.stringify(t), 'THROW', (e as Error).message); }
  }
});
