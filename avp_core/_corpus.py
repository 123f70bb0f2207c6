"""Embedded English training text for the built-in tokenizers (original prose, generated).

:func:`corpus` returns the same text on every call and every machine: hand-written paragraphs
plus sentences built from templates and word lists with a fixed-seed ``random.Random``.
"""

from __future__ import annotations

import random
from functools import lru_cache

_PARAGRAPHS = """\
The morning market opens before the sun is fully up. Farmers stack crates of tomatoes,
peppers and green beans while the baker next door pulls the first loaves out of the oven.
People come early because the bread is still warm and the best peaches are not yet gone.

A good recipe is a small program for the kitchen. It lists what you need, says in which
order to do things, and tells you how to know when a step is finished: the onions are soft,
the sauce coats the back of a spoon, the cake springs back when you press it gently.

To make a simple soup, melt butter in a heavy pot, add chopped onion and a pinch of salt,
and cook it slowly for ten minutes. Add two diced potatoes, a sliced leek and one litre of
stock. Simmer until everything is tender, then blend it smooth and season with pepper.

Travelling by train is slower than flying, but you see the country change outside the
window: wheat fields give way to forests, the rivers get wider, and small stations with
painted benches appear and vanish. Pack a book, some fruit and a warm sweater.

Before a long hike, check the weather forecast, tell someone where you are going, and carry
more water than you think you need. A map and a compass still work when the phone battery
is empty. Start early, rest often, and turn back if the clouds begin to build.

An agent is a program that reads a task, decides what to do next, and acts. One agent may
plan the work, another may search documents, a third may write the answer, and a fourth may
review it. They pass messages to each other, and each message carries the context needed
to continue the work without starting again from nothing.

When several agents share a conversation, much of what they read is the same: the system
instructions, the user's question, the notes of the agents before them. Recomputing that
shared context for every agent wastes time. Passing the computed state along saves it.

A document has a title, an author, a date and a body. Good documents also have a summary
at the top, short sections with clear headings, and a list of sources at the end. When you
review a report, read the summary first, then check that each claim has a source.

The planner wrote: "Step 1: collect the quarterly numbers. Step 2: compare them with last
year. Step 3: draft three paragraphs for the manager." The researcher replied with a table
of figures, and the writer turned the table into plain sentences anyone could follow.

Science begins with a question and a careful guess. You design an experiment, change one
thing at a time, measure what happens and write it down. If the results surprise you, you
repeat the experiment before you believe them, and you share your data so others can check.

Water boils at 100 degrees Celsius at sea level, but at lower temperatures on a mountain,
because the air pressure is lower. That is why pasta takes longer to cook at high altitude
and why climbers carry pressure cookers to prepare a proper meal.

Plants turn sunlight, water and carbon dioxide into sugar and oxygen. The green pigment in
their leaves captures light; tiny pores let gases in and out. In autumn the pigment breaks
down, and the yellow and red colours that were hidden underneath finally show.

The library on the corner lends books, tools and even musical instruments. On Saturdays a
volunteer teaches children to repair bicycles, and on Wednesday evenings there is a reading
group that has been meeting for twelve years without missing a single month.

Please reply with a short answer. If you are not sure, say so, and explain what information
would help you decide. Keep the tone friendly and avoid jargon unless the reader asked for it.

Meeting notes, Tuesday: the team agreed to release the new version on the 14th of March.
Open questions: who updates the user guide, and do we need a second round of testing on
older laptops? Action items: Sam drafts the guide, Priya books the test machines.

def add(a, b):
    return a + b

for item in items:
    if item.ready:
        print(item.name, item.size)

{"name": "search", "arguments": {"query": "train times from Lyon to Turin", "limit": 5}}
{"role": "tool", "content": "Found 3 results: 08:12, 11:40 and 16:05."}
"""

_NOUN_WORDS = """
apple orange lemon banana cherry grape melon peach pear plum berry carrot onion garlic potato
tomato pepper cabbage lettuce spinach mushroom bean lentil rice noodle flour sugar salt butter
cheese yogurt cream milk egg bread toast cake cookie pie muffin pancake waffle sandwich salad
soup stew curry sauce gravy vinegar honey jam oil spice herb basil parsley ginger cinnamon
chicken turkey beef lamb pork salmon tuna shrimp oven stove pan pot kettle knife fork spoon
plate bowl cup glass bottle jar lid tray towel sink fridge freezer blender grater whisk
kitchen table chair sofa bed pillow blanket lamp curtain carpet shelf drawer cupboard door
window wall floor ceiling roof stair garden fence gate lawn hedge tree flower rose tulip
daisy bush leaf branch root seed soil compost shovel rake hose bucket ladder hammer nail
screw drill saw wrench brush paint glue tape rope string wire battery cable plug switch
computer laptop keyboard screen mouse printer phone tablet camera speaker headphone charger
program function variable module package library server client request response error
exception message queue thread process file folder directory path record field column row
database query index cache buffer stream packet network router protocol header payload
token vector matrix tensor layer model weight gradient parameter dataset benchmark metric
agent planner researcher reviewer writer critic coordinator worker supervisor manager
assistant user customer client guest visitor member colleague partner friend neighbour
teacher student pupil professor doctor nurse patient pilot driver farmer baker butcher
carpenter plumber electrician mechanic engineer scientist chemist biologist physicist
astronomer geologist historian author editor journalist reporter photographer painter
musician singer dancer actor director producer designer architect lawyer judge officer
mother father sister brother daughter son aunt uncle cousin grandmother grandfather baby
child parent family household village town city capital country region province island
mountain valley hill river lake ocean sea beach coast harbour bay cliff cave desert forest
jungle meadow field farm orchard vineyard road street avenue lane highway bridge tunnel
station airport port terminal platform ticket passport luggage suitcase backpack map compass
hotel hostel campsite tent cabin cottage castle palace museum gallery theatre cinema church
temple market shop store bakery pharmacy hospital clinic school college university office
factory warehouse laboratory workshop studio garage prison court bank post
morning afternoon evening night midnight noon dawn dusk day week month year decade century
season spring summer autumn winter weather rain snow wind storm thunder lightning cloud fog
sunshine rainbow temperature degree pressure humidity climate forecast
planet star moon comet galaxy universe orbit gravity atom molecule electron proton neutron
cell gene protein enzyme virus bacteria fungus organism species evolution ecosystem habitat
energy force mass velocity acceleration friction heat light sound wave frequency magnet
circuit current voltage resistance element compound mixture solution acid crystal mineral
rock stone sand clay metal iron copper silver gold steel glass plastic paper wood cotton wool
document report summary chapter section paragraph sentence word letter page title heading
footnote appendix reference citation source quote draft revision version edition copy
contract invoice receipt budget expense income salary price cost profit loss tax loan debt
question answer problem solution idea plan goal task step stage phase deadline schedule
meeting agenda minute note comment feedback decision reason argument evidence claim fact
opinion theory hypothesis experiment observation measurement result conclusion analysis
story novel poem song album film episode series game puzzle riddle joke lesson exercise
holiday vacation journey trip tour voyage flight cruise adventure excursion visit
breakfast lunch dinner supper snack dessert picnic feast meal recipe ingredient portion
dog cat horse cow sheep goat pig rabbit mouse bird duck goose owl eagle sparrow fish frog
snake turtle lizard bee ant butterfly spider whale dolphin shark bear wolf fox deer lion
tiger elephant giraffe monkey zebra camel
shirt trouser jacket coat dress skirt sweater scarf glove hat boot shoe sock belt umbrella
health illness fever cough headache medicine vitamin exercise sleep dream habit routine
memory attention context conversation dialogue handoff pipeline workflow framework tool
checkpoint state snapshot fingerprint identity handshake signature checksum compression
"""

_VERB_WORDS = """
ask answer arrive bake begin believe borrow break bring build buy call carry catch change
check choose clean climb close collect compare complete compute connect consider contain
continue cook copy count cover create cross cut dance decide deliver describe design
destroy develop discover discuss divide draw dream drink drive drop earn eat enjoy enter
escape estimate examine expect explain explore fail fall feed feel fetch fill find finish
fix fly fold follow forget forgive freeze gather give grow guess handle hang happen hate
hear heat help hide hold hope hunt imagine improve include increase inform insert install
invent invite join jump keep kick kill kiss knock know laugh launch lead learn leave lend
lift listen live load lock look lose love make manage mark measure meet melt mention mix
move need notice obtain offer open order organise own pack paint pass pay perform pick
plan plant play point pour practise predict prefer prepare present press prevent print
produce promise protect provide publish pull push put reach read receive recognise record
reduce refuse relax remember remove repair repeat replace reply report request rescue
reset resolve rest return reuse review ride ring rise roast roll run save say search see
sell send serve settle shake share shine ship shop show sing sink sit sleep slice slide
smell smile solve sort speak spend spill split spread stand start stay steal step stir
stop store study succeed suggest supply support suppose surprise swim switch talk taste
teach tell test thank think throw touch train transfer translate travel treat try turn
understand unlock update upload use verify visit vote wait wake walk want warn wash watch
wear weigh welcome win wish wonder work worry wrap write yell
"""

_ADJ_WORDS = """
able active afraid alive ancient angry anxious awake bad basic beautiful big bitter blue
bold boring brave brief bright broad broken brown busy calm careful cheap clean clear
clever close cloudy cold common complex cool correct crazy creative crisp cruel curious
cute damp dark dead deep delicious dense different difficult dirty dry dull dusty eager
early easy empty equal exact excellent expensive extra fair false famous fancy fast fat
fierce final fine firm flat fresh friendly full funny gentle giant glad golden good grand
great green grey happy hard harsh healthy heavy helpful hidden high honest hot huge humble
hungry idle important innocent kind large late lazy light little lively local lonely long
loose loud lovely low lucky mad main major mild minor modern narrow nasty natural neat new
nice noisy normal odd old open orange ordinary pale patient perfect pink plain pleasant
polite poor popular powerful precise pretty private proud public pure purple quick quiet
rapid rare raw ready real red rich right rough round royal rude sad safe salty sharp shiny
short shy silent silly simple slim slow small smart smooth soft solid sour spare special
spicy steady steep sticky stiff strange strict strong stupid sudden sunny super sweet tall
tame tender thick thin tidy tight tiny tired tough true ugly usual vague valid vast warm
weak wealthy weird wet white whole wide wild windy wise wooden yellow young
"""

_ADVERBS = """
again almost already also always anyway barely carefully certainly clearly daily early
easily entirely especially eventually exactly finally fortunately frequently generally
gently gradually happily hardly honestly immediately indeed instead later likely merely
mostly naturally nearly never normally now often only perhaps politely possibly probably
quickly quietly rarely really recently regularly roughly seldom seriously simply slowly
sometimes soon still suddenly surely then there today together tomorrow tonight twice
usually very well yesterday yet
"""

_NAMES = """
Alice Bruno Chen Dana Elena Farid Grace Hiro Ines Jonas Kofi Lena Marco Nadia Omar Priya
Quinn Rosa Sam Tomas Uma Viktor Wen Yusuf Zoe Lisbon Oslo Kyoto Lima Nairobi Cairo Quebec
Vienna Porto Seville Dublin Krakow Lyon Turin Bergen Hanoi Accra Monday Tuesday Wednesday
Thursday Friday Saturday Sunday January February March April May June July August
September October November December Python Linux Europe Africa Asia America Australia
"""

_PAST_PAIRS = """
begin:began break:broke bring:brought build:built buy:bought catch:caught choose:chose cut:cut
draw:drew dream:dreamt drink:drank drive:drove eat:ate fall:fell feed:fed feel:felt find:found
fly:flew forget:forgot forgive:forgave freeze:froze give:gave grow:grew hang:hung hear:heard
hide:hid hold:held keep:kept know:knew lead:led leave:left lend:lent lose:lost make:made
meet:met pay:paid put:put read:read ride:rode ring:rang rise:rose run:ran say:said see:saw
sell:sold send:sent shake:shook shine:shone sing:sang sink:sank sit:sat sleep:slept slide:slid
speak:spoke spend:spent split:split spread:spread stand:stood steal:stole swim:swam teach:taught
tell:told think:thought throw:threw understand:understood wake:woke wear:wore win:won write:wrote
reset:reset upload:uploaded
"""
_PLURAL_PAIRS = """
child:children mouse:mice sheep:sheep fish:fish leaf:leaves knife:knives wolf:wolves
shelf:shelves person:people deer:deer potato:potatoes tomato:tomatoes
"""
_DOUBLED = "begin chop cut drop hug plan run ship shop sit slim step stir stop swim win"
_IRREGULAR_PAST = dict(pair.split(":") for pair in _PAST_PAIRS.split())
_IRREGULAR_PLURAL = dict(pair.split(":") for pair in _PLURAL_PAIRS.split())
_DOUBLE = set(_DOUBLED.split())


def _plural(word: str) -> str:
    """Plural of a noun (or third person singular of a verb)."""
    if word in _IRREGULAR_PLURAL:
        return _IRREGULAR_PLURAL[word]
    if word.endswith(("s", "x", "ch", "sh")):
        return word + "es"
    if word.endswith("y") and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def _stem(verb: str) -> str:
    return verb + verb[-1] if verb in _DOUBLE else verb


def _past(verb: str) -> str:
    if verb in _IRREGULAR_PAST:
        return _IRREGULAR_PAST[verb]
    if verb.endswith("e"):
        return verb + "d"
    if verb.endswith("y") and verb[-2] not in "aeiou":
        return verb[:-1] + "ied"
    return _stem(verb) + "ed"


def _ing(verb: str) -> str:
    if verb.endswith("ie"):
        return verb[:-2] + "ying"
    if verb.endswith("e") and not verb.endswith("ee"):
        return verb[:-1] + "ing"
    return _stem(verb) + "ing"


def _adverb(adj: str) -> str:
    if adj.endswith("le"):
        return adj[:-1] + "y"
    if adj.endswith("y"):
        return adj[:-1] + "ily"
    return adj + "ly"


def _a(word: str) -> str:
    """``word`` with its indefinite article."""
    return ("an " if word[0] in "aeiou" else "a ") + word


class _Deck:
    """Draws words from a list in shuffled order, reshuffling when exhausted (covers every word)."""

    def __init__(self, words: list[str], rng: random.Random) -> None:
        self.words, self.rng = words, rng
        self.pending: list[str] = []

    def __call__(self) -> str:
        if not self.pending:
            self.pending = self.words[:]
            self.rng.shuffle(self.pending)
        return self.pending.pop()


def _generated(rng: random.Random, target_chars: int) -> list[str]:
    """Sentences and short dialogues from templates, until ``target_chars`` is reached."""
    nouns, verbs = _NOUN_WORDS.split(), _VERB_WORDS.split()
    adjs, advs, names = _ADJ_WORDS.split(), _ADVERBS.split(), _NAMES.split()
    noun, nouns_ = _Deck(nouns, rng), _Deck([_plural(n) for n in nouns], rng)
    name = _Deck(names, rng)
    verb, verb3 = _Deck(verbs, rng), _Deck([_plural(v) for v in verbs], rng)
    past, ing = _Deck([_past(v) for v in verbs], rng), _Deck([_ing(v) for v in verbs], rng)
    adj, adv = _Deck(adjs, rng), _Deck(advs + [_adverb(a) for a in adjs], rng)
    templates = (
        lambda: f"{name()} {past()} the {adj()} {noun()} {adv()}.",
        lambda: f"The {adj()} {nouns_()} {past()} {_a(noun())} near the {noun()}.",
        lambda: f"{adj().capitalize()} {nouns_()} {verb()} {adv()} when the {noun()} is {adj()}.",
        lambda: f"Why did {name()} {verb()} the {noun()} in {name()}?",
        lambda: f"Please {verb()} the {noun()} and {verb()} the {adj()} {nouns_()}.",
        lambda: f"{adv().capitalize()}, the {noun()} {verb3()} {rng.randrange(2, 500)} {nouns_()}.",
        lambda: f"{name()} is {ing()} {_a(adj())} {noun()} for the {noun()}.",
        lambda: f"We were {ing()} {nouns_()} while {name()} {verb3()} the {noun()}.",
        lambda: f"User: Can you {verb()} my {noun()}?\nAssistant: Yes, I {past()} it {adv()}.",
        lambda: f"{noun().capitalize()}: {adj()}, {adj()} and {adj()}; page {rng.randrange(300)}.",
    )
    out, size = [], 0
    while size < target_chars:
        block = " ".join(rng.choice(templates)() for _ in range(rng.randrange(2, 6))) + "\n"
        out.append(block)
        size += len(block)
    return out


@lru_cache(maxsize=4)
def corpus(seed: int = 20240611, target_chars: int = 120_000) -> str:
    """The training text: fixed paragraphs, then generated prose and dialogue up to ~target."""
    rng = random.Random(seed)
    return _PARAGRAPHS + "\n" + "".join(_generated(rng, target_chars - len(_PARAGRAPHS)))
