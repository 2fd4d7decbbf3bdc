import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { InvalidInputError } from '../../../src/errors';
import { buildWeChatXml, parseWeChatXml, type XmlElement } from '../../../src/wechat/xml';

const OFFICIAL = path.join(__dirname, '../../fixtures/messages/official');

function rejection(text: string): InvalidInputError {
  try {
    parseWeChatXml(text);
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidInputError);
    expect((error as InvalidInputError).status).toBe(400);
    expect((error as InvalidInputError).message.length).toBeLessThan(80);
    return error as InvalidInputError;
  }
  throw new Error(`expected ${JSON.stringify(text.slice(0, 60))} to be rejected`);
}

/** Plain-object view of a parsed tree, for toEqual. */
const plain = (element: XmlElement): unknown => JSON.parse(JSON.stringify(element));

describe('parseWeChatXml', () => {
  test.each(readdirSync(OFFICIAL).filter((f) => f.endsWith('.xml')))('parses the official sample %s', (file) => {
    const root = parseWeChatXml(readFileSync(path.join(OFFICIAL, file), 'utf8'));
    expect(Object.getPrototypeOf(root)).toBeNull();
    expect(typeof root['ToUserName']).toBe('string');
    for (const value of Object.values(root)) expect(typeof value).toBe('string');
  });

  test('returns the root children as exact strings', () => {
    const root = parseWeChatXml(readFileSync(path.join(OFFICIAL, 'location.xml'), 'utf8'));
    expect(plain(root)).toEqual({
      ToUserName: 'toUser',
      FromUserName: 'fromUser',
      CreateTime: '1351776360',
      MsgType: 'location',
      Location_X: '23.134521',
      Location_Y: '113.358803',
      Scale: '20',
      Label: '位置信息',
      MsgId: '1234567890123456',
    });
  });

  test('keeps a 64-bit MsgId and leading zeros intact (no number conversion)', () => {
    const root = parseWeChatXml(
      '<xml><MsgId>6054768590064713728</MsgId><Content><![CDATA[00123]]></Content><Bare>00123</Bare>' +
        '<Float>1.50</Float><Big>18446744073709551615</Big><Bool>true</Bool></xml>',
    );
    expect(root['MsgId']).toBe('6054768590064713728');
    expect(root['Content']).toBe('00123');
    expect(root['Bare']).toBe('00123');
    expect(root['Float']).toBe('1.50');
    expect(root['Big']).toBe('18446744073709551615');
    expect(root['Bool']).toBe('true');
  });

  test('keeps whitespace exactly, in text and in CDATA', () => {
    const root = parseWeChatXml('<xml><A><![CDATA[  a\r\n b \n]]></A><B> </B><C><![CDATA[ ]]></C><D></D><E/></xml>');
    expect(plain(root)).toEqual({ A: '  a\r\n b \n', B: ' ', C: ' ', D: '', E: '' });
  });

  test('tolerates control characters seen in real traffic, in text and in CDATA', () => {
    const root = parseWeChatXml('<xml><Content><![CDATA[a\x02b\x10c\x1dd]]></Content><Label>x\x02y\x1d</Label></xml>');
    expect(root['Content']).toBe('a\x02b\x10c\x1dd');
    expect(root['Label']).toBe('x\x02y\x1d');
  });

  test('decodes the predefined entities and character references', () => {
    expect(parseWeChatXml('<xml><A>&lt;b&gt; &amp; &quot;&apos; &#20320;&#x597D;</A></xml>')['A']).toBe('<b> & "\' 你好');
  });

  test('accepts a BOM, an XML declaration, comments and surrounding whitespace', () => {
    const root = parseWeChatXml('\ufeff<?xml version="1.0" encoding="UTF-8"?>\n<!-- hi -->\n<xml>\n  <A>1</A>\n</xml>\n');
    expect(plain(root)).toEqual({ A: '1' });
  });

  test('ignores attributes', () => {
    expect(plain(parseWeChatXml('<xml a="1"><A b="2">x</A><B c="3"/></xml>'))).toEqual({ A: 'x', B: '' });
  });

  test('turns repeated tags into arrays and keeps nested elements', () => {
    const root = parseWeChatXml(
      '<xml><SendPicsInfo><Count>2</Count><PicList><item><PicMd5Sum>a</PicMd5Sum></item>' +
        '<item><PicMd5Sum>b</PicMd5Sum></item></PicList></SendPicsInfo><A>1</A><A>2</A></xml>',
    );
    expect(plain(root)).toEqual({
      SendPicsInfo: { Count: '2', PicList: { item: [{ PicMd5Sum: 'a' }, { PicMd5Sum: 'b' }] } },
      A: ['1', '2'],
    });
    const info = root['SendPicsInfo'] as XmlElement;
    expect(Object.getPrototypeOf(info)).toBeNull();
  });

  test('drops text mixed in beside child elements', () => {
    expect(plain(parseWeChatXml('<xml><A>text<B>1</B>more</A></xml>'))).toEqual({ A: { B: '1' } });
  });

  test('tags named like xml2js internals or Object.prototype members are ordinary fields', () => {
    const root = parseWeChatXml(
      '<xml><_>u</_><cdata>c</cdata><toString>t</toString><hasOwnProperty>h</hasOwnProperty><valueOf>v</valueOf>' +
        '<X><![CDATA[ ]]><Y>1</Y></X></xml>',
    );
    expect(plain(root)).toEqual({ _: 'u', cdata: 'c', toString: 't', hasOwnProperty: 'h', valueOf: 'v', X: { Y: '1' } });
  });

  test('__proto__, constructor and prototype tags are dropped and pollute nothing', () => {
    const before = Object.getOwnPropertyNames(Object.prototype).sort();
    const root = parseWeChatXml(
      '<xml><__proto__><polluted>yes</polluted></__proto__><constructor><prototype><polluted>yes</polluted>' +
        '</prototype></constructor><prototype>p</prototype><Nested><__proto__>x</__proto__><A>1</A></Nested>' +
        '<MsgType>text</MsgType></xml>',
    );
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(before);
    expect(Object.keys(root)).toEqual(['Nested', 'MsgType']);
    expect(Object.getPrototypeOf(root)).toBeNull();
    expect(Object.keys(root['Nested'] as XmlElement)).toEqual(['A']);
  });

  describe('refuses DTDs before parsing', () => {
    test.each([
      [
        'billion laughs',
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">' +
          '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><xml><Content>&lol3;</Content></xml>',
      ],
      ['external entity', '<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><xml><Content>&xxe;</Content></xml>'],
      ['lower-case doctype', '<!doctype xml><xml><A>1</A></xml>'],
      ['doctype inside the root', '<xml><!DOCTYPE x><A>1</A></xml>'],
      ['entity declaration without doctype', '<!ENTITY x "y"><xml><A>&x;</A></xml>'],
      ['doctype after a comment', '<!-- c --><!DOCTYPE xml SYSTEM "http://example.com/x.dtd"><xml/>'],
    ])('%s', (_name, text) => {
      expect(rejection(text).message).toMatch(/DTD|entity/);
    });

    test('a user text that merely contains "<!DOCTYPE" inside CDATA is fine', () => {
      const root = parseWeChatXml('<xml><Content><![CDATA[<!DOCTYPE html><!ENTITY x "y">]]></Content></xml>');
      expect(root['Content']).toBe('<!DOCTYPE html><!ENTITY x "y">');
    });

    test('undeclared entities are not well-formed', () => {
      rejection('<xml><A>&xxe;</A></xml>');
      rejection('<xml><A>&toString;</A></xml>');
    });
  });

  test.each([
    ['empty', ''],
    ['whitespace', '  \n '],
    ['plain text', 'hello'],
    ['JSON', '{"ToUserName":"x"}'],
    ['unclosed root', '<xml><A>1</A>'],
    ['mismatched tags', '<xml><A>1</B></xml>'],
    ['two roots', '<xml><A>1</A></xml><xml><A>2</A></xml>'],
    ['trailing element', '<xml><A>1</A></xml><junk/>'],
    ['trailing text', '<xml><A>1</A></xml>junk'],
    ['unterminated CDATA', '<xml><A><![CDATA[x</A></xml>'],
    ['bare ampersand', '<xml><A>a & b</A></xml>'],
    ['bare less-than', '<xml><A>a < b</A></xml>'],
  ])('rejects XML that is not well-formed: %s', (_name, text) => {
    rejection(text);
  });

  test('rejects a root other than <xml>', () => {
    expect(rejection('<message><A>1</A></message>').message).toMatch(/root/);
    expect(rejection('<XML><A>1</A></XML>').message).toMatch(/root/);
  });

  test('an empty <xml> root has no fields', () => {
    expect(plain(parseWeChatXml('<xml/>'))).toEqual({});
    expect(plain(parseWeChatXml('<xml>just text</xml>'))).toEqual({});
  });

  test('accepts nesting up to 8 levels and rejects 9', () => {
    const nest = (levels: number) => `${'<a>'.repeat(levels - 1)}x${'</a>'.repeat(levels - 1)}`;
    expect(() => parseWeChatXml(`<xml>${nest(8)}</xml>`)).not.toThrow();
    expect(rejection(`<xml>${nest(9)}</xml>`).message).toMatch(/deep/);
  });

  test('rejects 1000-deep and 50000-deep nesting without a stack overflow', () => {
    for (const depth of [1000, 50_000]) {
      expect(rejection(`<xml>${'<a>'.repeat(depth)}${'</a>'.repeat(depth)}</xml>`).message).toMatch(/deep/);
    }
  });

  test('accepts 500 elements and rejects 501', () => {
    expect(() => parseWeChatXml(`<xml>${'<a>1</a>'.repeat(499)}</xml>`)).not.toThrow();
    expect(rejection(`<xml>${'<a>1</a>'.repeat(500)}</xml>`).message).toMatch(/many/);
    expect(rejection(`<xml>${'<a><b/><c/></a>'.repeat(200)}</xml>`).message).toMatch(/many/);
  });

  test('rejects non-string input with a 400', () => {
    expect(() => parseWeChatXml(undefined as unknown as string)).toThrow(InvalidInputError);
    expect(() => parseWeChatXml(Buffer.from('<xml/>') as unknown as string)).toThrow(InvalidInputError);
  });
});

describe('buildWeChatXml', () => {
  test('renders strings as CDATA, numbers bare, nested elements and repeated tags', () => {
    expect(
      buildWeChatXml({
        ToUserName: 'user',
        CreateTime: 1700000000,
        MsgType: 'news',
        ArticleCount: 2,
        Articles: { item: [{ Title: 'a' }, { Title: 'b' }] },
        Skipped: undefined,
      }),
    ).toBe(
      '<xml><ToUserName><![CDATA[user]]></ToUserName><CreateTime>1700000000</CreateTime>' +
        '<MsgType><![CDATA[news]]></MsgType><ArticleCount>2</ArticleCount>' +
        '<Articles><item><Title><![CDATA[a]]></Title></item><item><Title><![CDATA[b]]></Title></item></Articles></xml>',
    );
  });

  test('splits "]]>" across CDATA sections', () => {
    expect(buildWeChatXml({ A: 'x]]>y' })).toBe('<xml><A><![CDATA[x]]]]><![CDATA[>y]]></A></xml>');
    expect(parseWeChatXml(buildWeChatXml({ A: ']]>]]>' }))['A']).toBe(']]>]]>');
  });

  test('refuses invalid tag names and non-finite numbers', () => {
    expect(() => buildWeChatXml({ 'a b': 'x' })).toThrow(TypeError);
    expect(() => buildWeChatXml({ '<x>': 'x' })).toThrow(TypeError);
    expect(() => buildWeChatXml({ '1a': 'x' })).toThrow(TypeError);
    expect(() => buildWeChatXml({ A: Number.NaN })).toThrow(TypeError);
    expect(() => buildWeChatXml({ A: Number.POSITIVE_INFINITY })).toThrow(TypeError);
  });

  test('round-trips with parseWeChatXml for arbitrary strings (generated)', () => {
    // A small deterministic generator (mulberry32) biased towards the characters that break XML.
    let seed = 0x5eed;
    const random = () => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const pieces = [
      ']]>', ']]', ']', '>', '<', '&', '&amp;', '<![CDATA[', '<!DOCTYPE x>', '<xml>', '</xml>', '"', "'",
      ' ', '  ', '\t', '\n', '\r', '\r\n', '\x00', '\x02', '\x10', '\x1d', '\x7f', '\ufeff', '\ufffe',
      '中文', '😀', '\ud800', '\udfff', 'a', 'Z', '0', '00123', '6054768590064713728',
    ];
    const generate = () => {
      let s = '';
      const length = Math.floor(random() * 12);
      for (let i = 0; i < length; i++) {
        s +=
          random() < 0.7
            ? pieces[Math.floor(random() * pieces.length)]!
            : String.fromCharCode(Math.floor(random() * 0x10000));
      }
      return s;
    };
    for (let i = 0; i < 3000; i++) {
      const fields = { Content: generate(), Title: generate(), Nested: { Inner: generate() }, Count: i };
      const root = parseWeChatXml(buildWeChatXml(fields));
      expect(plain(root)).toEqual({ ...fields, Count: String(i) });
    }
  });
});
